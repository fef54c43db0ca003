#!/usr/bin/python3
"""vitcc vs ONNX Runtime vs PyTorch eager on the same ONNX files and inputs; writes this CPU's
benchmarks/results/CPU.md and CPU.svg (CPU: vendor, family and model, cpu_slug()), then BENCHMARKS.md,
the index of every CPU's file. A run never overwrites another CPU's figures. Run through
tools/bench/compare.sh (`make bench-compare`), which builds what this needs.

For every model of benchmarks/models.txt (NAME FIXTURE):
  * the fixture (tools/export/make_fixtures.py) gives model.onnx, input.bin and reference.bin; it is
    generated into --fixtures when missing;
  * vitcc-pack packs model.onnx once per --precisions (fp32 as NAME, bf16 and int8 as NAME_bf16 and
    NAME_int8; a precision its pack-time check refuses is reported, not timed); vitcc-run runs each
    (its per-model runner is compiled once, before timing, and its output is checked against
    reference.bin with the precision's bound);
  * ONNX Runtime (npm onnxruntime-node, all graph optimisations) runs the same model.onnx and input.bin,
    and as `onnxruntime-int8` the model rewritten by tools/bench/ort_quantize.py into quantize_dynamic's
    form (DynamicQuantizeLinear + MatMulInteger, per-tensor int8 weights), cached in BUILD/ort-int8;
  * PyTorch eager runs the module the ONNX file was exported from, with the same weights and input.
Each runtime runs at 1 and 2 intra-op threads. Timing: --rounds rounds; in each round every
(runtime, threads) pair runs once as a fresh process (order rotated per round, so runtimes are
interleaved and drift hits all alike) doing --warmup untimed then --runs timed forward passes. The
table gives the median over all timed runs (rounds x runs >= 20), min and max, vitcc's ratio to each
other runtime at the same thread count, and the peak RSS of the processes (ru_maxrss from wait4, median
over the rounds; for vitcc-run it is the larger of the driver and the runner it starts), and for each
vitcc precision the % of that precision's own measured one-core peak (vitcc_bench_kernels' peak/*: fp32
FMA chains, the same with the bf16 widening, int8 dot products) that the model's FLOPs at its median
time make.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, '..', '..'))


def log(*a):
    print('[compare]', *a, file=sys.stderr, flush=True)


def read_models(path):
    models = []
    with open(path) as f:
        for line in f:
            line = line.split('#', 1)[0].split()
            if len(line) >= 2:
                models.append((line[0], line[1]))
    return models


def run_measured(cmd, env=None):
    """Runs cmd, returns (rc, stdout, stderr, peak RSS in MiB) with ru_maxrss of this child (and of the
    children it waited for)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return p.returncode, out.read().decode(errors='replace'), err.read().decode(errors='replace'), ru.ru_maxrss / 1024.0


def loadavg():
    with open('/proc/loadavg') as f:
        return float(f.read().split()[0])


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=60).stdout.strip()
    except Exception:  # noqa: BLE001 -- a version probe must never stop the comparison
        return ''


class Runtime:
    def __init__(self, key, label, threads, precision='fp32'):
        self.key, self.label, self.threads, self.precision = key, label, threads, precision

    @property
    def id(self):
        return '%s/%d' % (self.key, self.threads)


PRECISIONS = ['fp32', 'bf16', 'int8']


def vitcc_key(precision):
    return 'vitcc' if precision == 'fp32' else 'vitcc-' + precision


def vitcc_name(name, precision):
    """The packed model's name (and folder) at a precision: NAME at fp32, NAME_bf16, NAME_int8."""
    return name if precision == 'fp32' else '%s_%s' % (name, precision)


def ort_int8_model(build, fixture, fdir, ort_dir):
    """FIXTURE's model.onnx in quantize_dynamic's form (tools/bench/ort_quantize.py), written once into
    BUILD/ort-int8/FIXTURE/ and checked there (cosine of ONNX Runtime's int8 output to its float32 one).
    Returns (path or None, {'summary', 'check'})."""
    src = os.path.join(fdir, 'model.onnx')
    odir = os.path.join(build, 'ort-int8', fixture)
    dst, note = os.path.join(odir, 'model.onnx'), os.path.join(odir, 'ort_quantize.txt')
    if not os.path.exists(dst) or not os.path.exists(note) or os.path.getmtime(dst) < os.path.getmtime(src):
        os.makedirs(odir, exist_ok=True)
        log('%s: ort_quantize.py (ONNX Runtime int8 model)' % fixture)
        p = subprocess.run(['/usr/bin/python3', os.path.join(HERE, 'ort_quantize.py'), src, dst, '--check', fdir,
                            '--ort', ort_dir], capture_output=True, text=True)
        if p.returncode != 0:
            log('%s: ort_quantize.py failed: %s' % (fixture, p.stderr.strip()[-400:]))
            return None, {'summary': 'ort_quantize.py failed: ' + p.stderr.strip()[-200:], 'check': ''}
        with open(note, 'w') as f:
            f.write(p.stdout)
    with open(note) as f:
        lines = [ln.replace('ort_quantize: ', '', 1) for ln in f.read().splitlines()]
    summary = next((ln.split(': ', 1)[1] if ': ' in ln else ln for ln in lines if 'MatMulInteger' in ln), '')
    check = next((ln for ln in lines if 'cosine' in ln), '')
    return dst, {'summary': summary, 'check': check}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--build', default=os.path.join(ROOT, 'build-bench'))
    ap.add_argument('--fixtures', default=None,
                    help='colon-separated fixture folders to look in first; missing fixtures are generated into '
                         'BUILD/fixtures')
    ap.add_argument('--ort', default=None, help='onnxruntime-node folder (default BUILD/ort/node_modules/onnxruntime-node)')
    ap.add_argument('--models', default='', help='comma-separated NAMEs of benchmarks/models.txt (default: all)')
    ap.add_argument('--runtimes', default='vitcc,onnxruntime,onnxruntime-int8,pytorch')
    ap.add_argument('--precisions', default='fp32,bf16,int8', help='the precisions vitcc runs at (vitcc-pack --precision)')
    ap.add_argument('--skip-refused', action='store_true',
                    help='do not time a precision whose pack-time accuracy check refuses the model (default: pack it '
                         'again with --no-check and time it, marked as such: speed does not depend on the weights)')
    ap.add_argument('--threads', default='1,2')
    ap.add_argument('--rounds', type=int, default=4)
    ap.add_argument('--runs', type=int, default=6, help='timed runs per process (rounds x runs >= 20)')
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--out', default=None, help='default benchmarks/results/CPU.md, CPU this machine\'s cpu_slug()')
    ap.add_argument('--svg', default=None, help='default: --out with .svg')
    ap.add_argument('--json', default=None, help='raw results (default BUILD/compare.json)')
    ap.add_argument('--command', default=None, help='the command line to quote in BENCHMARKS.md')
    ap.add_argument('--no-suite', action='store_true', help='skip the Google Benchmark kernel/model figures')
    args = ap.parse_args()
    if args.out is None:
        args.out = os.path.join(RESULTS, cpu_slug() + '.md')
    if args.svg is None:
        args.svg = os.path.splitext(args.out)[0] + '.svg'

    build = os.path.abspath(args.build)
    own_fixtures = os.path.join(build, 'fixtures')
    fixture_dirs = [os.path.abspath(d) for d in (args.fixtures or '').split(':') if d] + [own_fixtures]
    ort_dir = os.path.abspath(args.ort or os.path.join(build, 'ort', 'node_modules', 'onnxruntime-node'))
    models_dir = os.path.join(build, 'bench-models')
    json_out = args.json or os.path.join(build, 'compare.json')
    pack, run = os.path.join(build, 'bin', 'vitcc-pack'), os.path.join(build, 'bin', 'vitcc-run')
    env = dict(os.environ)
    env.setdefault('VITCC_CACHE_DIR', os.path.join(build, 'runner-cache'))
    if args.rounds * args.runs < 20:
        sys.exit('compare: rounds x runs must be >= 20')

    models = read_models(os.path.join(ROOT, 'benchmarks', 'models.txt'))
    if args.models:
        want = args.models.split(',')
        models = [m for m in models if m[0] in want]
    thread_counts = [int(t) for t in args.threads.split(',')]
    precisions = [p for p in args.precisions.split(',') if p]
    for p in precisions:
        if p not in PRECISIONS:
            sys.exit('compare: unknown precision %s (fp32, bf16, int8)' % p)
    runtimes = []
    for key in args.runtimes.split(','):
        if key == 'vitcc':
            # fp32 keeps the key 'vitcc' (ids vitcc/1, vitcc/2): older compare.json files read the same.
            for p in precisions:
                runtimes += [Runtime(vitcc_key(p), 'vitcc ' + p, t, p) for t in thread_counts]
            continue
        label, prec = {'onnxruntime': ('ONNX Runtime fp32', 'fp32'), 'onnxruntime-int8': ('ONNX Runtime int8', 'int8'),
                       'pytorch': ('PyTorch eager fp32', 'fp32')}[key]
        runtimes += [Runtime(key, label, t, prec) for t in thread_counts]
    vitcc_precisions = sorted({rt.precision for rt in runtimes if rt.key.startswith('vitcc')}, key=PRECISIONS.index)

    load_start = loadavg()
    log('load average at start: %.2f' % load_start)
    results = {'models': {}, 'load_samples': [load_start]}

    for name, fixture in models:
        fdir = next((os.path.join(d, fixture) for d in fixture_dirs
                     if os.path.exists(os.path.join(d, fixture, 'model.onnx'))), os.path.join(own_fixtures, fixture))
        if not os.path.exists(os.path.join(fdir, 'model.onnx')):
            log('%s: generating fixture %s into %s' % (name, fixture, own_fixtures))
            rc = subprocess.call(['/usr/bin/python3', os.path.join(ROOT, 'tools', 'export', 'make_fixtures.py'),
                                  own_fixtures, '--set', 'full', '--only', fixture])
            if rc != 0 or not os.path.exists(os.path.join(fdir, 'model.onnx')):
                log('%s: no fixture, skipped' % name)
                continue
        tmp_out = os.path.join(build, 'compare-out.bin')
        entry = {'fixture': fixture, 'runs': {}, 'rss_mib': {}, 'workspace_bytes': {}, 'precision': {}}
        cfg_paths = {}
        for prec in vitcc_precisions:
            packed = vitcc_name(name, prec)
            pe = entry['precision'][prec] = {}
            mdir = os.path.join(models_dir, packed)
            cfg_path = os.path.join(mdir, packed + '.json')
            refused_note = os.path.join(mdir, 'refused.txt')  # why an unchecked pack was written
            if not os.path.exists(cfg_path) or os.path.getmtime(cfg_path) < os.path.getmtime(os.path.join(fdir, 'model.onnx')):
                log('%s: vitcc-pack --precision %s' % (name, prec))
                cmd = [pack, os.path.join(fdir, 'model.onnx'), '-o', mdir, '--name', packed, '--precision', prec]
                p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                if os.path.exists(refused_note):
                    os.remove(refused_note)
                if p.returncode != 0:
                    pe['refused'] = (p.stderr.strip().splitlines() or ['(no message)'])[-1]
                    log('%s: vitcc-pack refused it at %s: %s' % (name, prec, pe['refused']))
                    # The fixtures' random weights are what the accuracy check refuses (docs/PRECISION.md);
                    # the speed is the same with any weights, so time an unchecked pack, marked as such.
                    if prec == 'fp32' or args.skip_refused or 'too far from the float32 graph' not in pe['refused'] \
                            or subprocess.call(cmd + ['--no-check'], stdout=subprocess.DEVNULL) != 0:
                        continue
                    with open(refused_note, 'w') as f:
                        f.write(pe['refused'] + '\n')
            if os.path.exists(refused_note):
                if args.skip_refused:
                    continue
                with open(refused_note) as f:
                    pe['refused'] = f.read().strip()
                pe['unchecked'] = True
            # The config as vitcc-run's checked reader sees it; this script never parses NAME.json.
            info = subprocess.run([run, cfg_path, '--info'], capture_output=True, text=True)
            if info.returncode != 0:
                pe['refused'] = info.stderr.strip()
                log('%s %s: %s' % (name, prec, pe['refused']))
                continue
            cfg = json.loads(info.stdout)
            pe['weights_bytes'] = cfg['blob']['bytes']
            pe['flops'] = cfg.get('stats', {}).get('flops') or None
            # Compile the runner (cached) and check parity (the precision's own bound) before any timing.
            rc, out, err, _ = run_measured([run, cfg_path, '--input', os.path.join(fdir, 'input.bin'), '--output', tmp_out,
                                            '--reference', os.path.join(fdir, 'reference.bin')], env)
            parity = re.search(r'parity .*', out + err)
            pe['parity'] = parity.group(0) if parity else ''
            if rc != 0 and not parity:
                pe['refused'] = 'vitcc-run failed: %s %s' % (out.strip()[-300:], err.strip()[-300:])
                log('%s %s: %s' % (name, prec, pe['refused']))
                continue
            if rc != 0:
                log('%s %s: outside its precision\'s bound, timed all the same: %s' % (name, prec, pe['parity']))
            cfg_paths[prec] = cfg_path
        if 'fp32' in entry['precision'] and 'weights_bytes' in entry['precision']['fp32']:
            entry['weights_bytes'] = entry['precision']['fp32']['weights_bytes']
            entry['parity'] = entry['precision']['fp32']['parity']
        ort_int8 = None
        if any(rt.key == 'onnxruntime-int8' for rt in runtimes):
            ort_int8, entry['ort_int8'] = ort_int8_model(build, fixture, fdir, ort_dir)
        for rt in runtimes:
            entry['runs'][rt.id] = []
            entry['rss_mib'][rt.id] = []
        for r in range(args.rounds):
            results['load_samples'].append(loadavg())
            order = runtimes[r % len(runtimes):] + runtimes[:r % len(runtimes)]
            for rt in order:
                if rt.key.startswith('vitcc'):
                    if rt.precision not in cfg_paths:
                        continue
                    cmd = [run, cfg_paths[rt.precision], '--input', os.path.join(fdir, 'input.bin'), '--output', tmp_out,
                           '--repeat', str(args.runs), '--threads', str(rt.threads)]
                elif rt.key in ('onnxruntime', 'onnxruntime-int8'):
                    onnx_file = os.path.join(fdir, 'model.onnx') if rt.key == 'onnxruntime' else ort_int8
                    if not onnx_file:
                        continue
                    cmd = ['node', os.path.join(HERE, 'ort_runner.js'), ort_dir, onnx_file,
                           os.path.join(fdir, 'input.bin'), str(rt.threads), str(args.warmup), str(args.runs)]
                else:
                    cmd = ['/usr/bin/python3', os.path.join(HERE, 'torch_runner.py'), fixture, fdir, str(rt.threads),
                           str(args.warmup), str(args.runs)]
                penv = dict(env)
                penv['OMP_NUM_THREADS'] = str(rt.threads)
                penv['OPENBLAS_NUM_THREADS'] = str(rt.threads)
                rc, out, err, rss = run_measured(cmd, penv)
                if rc != 0:
                    log('%s %s failed (exit %d): %s' % (name, rt.id, rc, err.strip()[-400:]))
                    continue
                if rt.key.startswith('vitcc'):
                    m = re.search(r'runs_ms (\S+)', out)
                    times = [float(v) for v in m.group(1).split(',')] if m else []
                    ws = re.search(r'workspace (\d+) bytes', out)
                    if ws:
                        entry['workspace_bytes'][rt.id] = int(ws.group(1))
                else:
                    rec = json.loads(out.strip().splitlines()[-1])
                    times = rec['times_ms']
                    results.setdefault('versions', {})[rt.key.split('-')[0]] = rec['version']
                entry['runs'][rt.id] += times
                entry['rss_mib'][rt.id].append(rss)
            log('%s round %d/%d done' % (name, r + 1, args.rounds))
        results['models'][name] = entry
        summary = ', '.join('%s %.1f' % (k, statistics.median(v)) for k, v in entry['runs'].items() if v)
        log('%s: %s ms' % (name, summary))
    results['load_samples'].append(loadavg())
    if not args.no_suite:
        results['suite'] = run_suite(build, models_dir)
        results['load_samples'].append(loadavg())

    results['machine'] = machine_info(build)
    results['command'] = args.command or ' '.join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])
    results['date'] = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    results['rounds'], results['runs'], results['warmup'] = args.rounds, args.runs, args.warmup
    results['runtimes'] = [(rt.key, rt.label, rt.threads) for rt in runtimes]
    results['precisions'] = vitcc_precisions
    with open(json_out, 'w') as f:
        json.dump(results, f, indent=1)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.svg)), exist_ok=True)
    write_markdown(results, args.out, os.path.relpath(args.svg, os.path.dirname(os.path.abspath(args.out))))
    write_svg(results, args.svg)
    write_index()
    log('wrote %s, %s, %s and %s' % (args.out, args.svg, INDEX, json_out))


# The Google Benchmark figures BENCHMARKS.md quotes (the whole suite: `make bench`).
SUITE_KERNELS = ('peak|gemm(_bf16|_int8)?/M:(197|1370)/K:(384|768|1536|3072)/.*threads:1|'
                 'attention/T:(197|257|1370)/D:64/heads:6/|block/')


def run_suite(build, models_dir):
    """Runs the kernel and model benchmarks; returns {name: {real_ms, gflops, pct_peak}}."""
    out = {}
    env = dict(os.environ, VITCC_BENCH_MODELS=models_dir)
    for exe, flt in (('vitcc_bench_kernels', SUITE_KERNELS), ('vitcc_bench_models', '.')):
        path = os.path.join(build, 'bin', exe)
        if not os.path.exists(path):
            continue
        log('running %s' % exe)
        p = subprocess.run([path, '--benchmark_filter=' + flt, '--benchmark_format=json'], capture_output=True,
                           text=True, env=env)
        try:
            data = json.loads(p.stdout[p.stdout.index('{'):])
        except ValueError:
            log('%s: no JSON output' % exe)
            continue
        for b in data['benchmarks']:
            if b.get('error_occurred'):
                continue
            scale = {'ns': 1e-6, 'us': 1e-3, 'ms': 1.0, 's': 1e3}[b.get('time_unit', 'ns')]
            out[b['name']] = {'real_ms': b['real_time'] * scale, 'cpu_ms': b['cpu_time'] * scale,
                              'gflops': b.get('GFLOP/s'), 'pct_peak': b.get('%peak')}
    return out


def suite_section(res):
    suite = res.get('suite')
    if not suite:
        return []
    lines = ['## vitcc kernels and models (Google Benchmark, same run)\n',
             'From `%s/bin/vitcc_bench_kernels` and `vitcc_bench_models` (`make bench` runs them all). '
             '%%peak is of the peak the suite measures itself for the benchmark\'s precision, times the threads: '
             'fp32 (and attention, LayerNorm, everything but the weights\' GEMMs) `peak/fp32_fma`, 16 independent '
             'FMA chains; `gemm_bf16` and `_bf16` models `peak/bf16_fma`, the same FMA with the bf16 kernel\'s '
             'widening of B; `gemm_int8` and `_int8` models `peak/int8_dot`, 16 chains of the int8 GEMM\'s '
             'dot-product instruction. GFLOP/s (GOP/s for int8) count 2 per multiply-add, wall-clock time.\n' % 'BUILD',
             '| benchmark | ms | GFLOP/s | % of peak |', '|---|---:|---:|---:|']
    for name, v in suite.items():
        short = re.sub(r'/(min_time:[0-9.]+|real_time|manual_time|iterations:\d+)', '', name)
        g = '%.1f' % v['gflops'] if v.get('gflops') is not None else '-'
        pk = '%.1f' % v['pct_peak'] if v.get('pct_peak') is not None else '-'
        lines.append('| %s | %.3f | %s | %s |' % (short, v['real_ms'], g, pk))
    lines.append('')
    return lines


RESULTS = os.path.join(ROOT, 'benchmarks', 'results')
INDEX = os.path.join(ROOT, 'BENCHMARKS.md')


def cpu_id():
    """(vendor_id, family, model) of this CPU: /proc/cpuinfo's words (not a localised lscpu's), lscpu's
    where it has none. Machines of one name differ (an "AMD EPYC" has been Zen 4 and Zen 5)."""
    def cpuinfo(key):
        return sh("sed -n 's/^%s\\s*: *//p' /proc/cpuinfo | head -n1" % key)
    return (cpuinfo('vendor_id') or sh("lscpu | sed -n 's/^Vendor ID: *//p' | head -n1"),
            cpuinfo('cpu family') or sh("lscpu | sed -n 's/^CPU family: *//p' | head -n1"),
            cpuinfo('model') or sh("lscpu | sed -n 's/^Model: *//p' | head -n1"))


def cpu_slug():
    """This CPU as a file name: vendor, family and model, e.g. amd-family25-model17."""
    vendor_id, family, model = cpu_id()
    vendor = {'AuthenticAMD': 'amd', 'GenuineIntel': 'intel'}.get(vendor_id, 'cpu')
    slug = vendor + ('-family%s' % family if family else '') + ('-model%s' % model if model else '')
    return re.sub(r'[^a-z0-9-]', '', slug.lower())


def write_index():
    """BENCHMARKS.md: one row per CPU's results file (benchmarks/results/*.md), from each file's own
    header: when it was written, the CPU, the command; the figures stay in the files."""
    rows = []
    for name in sorted(os.listdir(RESULTS)) if os.path.isdir(RESULTS) else []:
        if not name.endswith('.md'):
            continue
        text = open(os.path.join(RESULTS, name)).read()
        date = re.search(r'^Written by .* on (.*?);', text, re.M)
        cpu = re.search(r'^\| CPU \| (.*) \|$', text, re.M)
        cmd = re.search(r'^Command: `(.*)`$', text, re.M)
        rows.append('| [%s](benchmarks/results/%s) | %s | %s | `%s` |' % (
            name[:-3], name, cpu.group(1) if cpu else '?', date.group(1) if date else '?', cmd.group(1) if cmd else '?'))
    lines = ['# Benchmarks: vitcc vs ONNX Runtime vs PyTorch eager\n',
             'Written by `tools/bench/compare.py`; do not edit by hand. Each CPU has its own file, written by '
             '`make bench-compare` on a machine with that CPU (vendor, family and model from lscpu): a run '
             'rewrites its own CPU\'s file and this index, never another CPU\'s figures. Machines of this kind '
             'differ (AMD EPYC Zen 4 and Zen 5, Intel Xeon with AMX), and figures from one do not hold on another. '
             'Each file gives the machine, the versions, the command, vitcc at every precision against ONNX '
             'Runtime fp32 and int8 and PyTorch, the targets, the kernel suite and a chart.\n',
             '| CPU file | CPU (lscpu) | written | command |', '|---|---|---|---|'] + rows + ['']
    with open(INDEX, 'w') as f:
        f.write('\n'.join(lines))


def machine_info(build):
    cpu = sh("lscpu | sed -n 's/^Model name: *//p' | head -n1")
    _, family, model = cpu_id()  # the name alone does not say which CPU it is
    if family and model:
        cpu = '%s (family %s, model %s)' % (cpu, family, model)
    flags = set(sh("grep -m1 '^flags' /proc/cpuinfo").split())
    peaks = measure_peaks(build)
    return {
        'cpu': cpu, 'cores': os.cpu_count(), 'avx512': 'avx512f' in flags, 'kernel': platform.release(),
        'vnni': 'avx512_vnni' in flags or 'avx_vnni' in flags, 'amx': 'amx_tile' in flags,
        'memory_gib': round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30, 1),
        'peak_gflops_1core': '%.0f' % peaks['fp32'] if peaks.get('fp32') else '',
        'peaks_1core': peaks,
        'compiler': sh("c++ --version | head -n1"),
        'node': sh('node --version'),
        'blas': sh("update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | sed -n 's/^Value: //p'"),
        'vitcc': sh("sed -n 's/#define VITCC_VERSION_\\(MAJOR\\|MINOR\\|PATCH\\) //p' %s | paste -sd." %
                    os.path.join(ROOT, 'include', 'vitcc', 'version.hpp')),
    }


# vitcc_bench_kernels' peak benchmark of each precision (benchmarks/bench_common.hpp).
PEAK_BENCHMARKS = {'fp32': 'peak/fp32_fma', 'bf16': 'peak/bf16_fma', 'int8': 'peak/int8_dot'}


def measure_peaks(build):
    """One-core peaks in GFLOP/s (GOP/s for int8) by precision, best of the suite's 10 x 20 ms runs."""
    bk = os.path.join(build, 'bin', 'vitcc_bench_kernels')
    if not os.path.exists(bk):
        return {}
    out = sh('%s --benchmark_filter=^peak/ --benchmark_format=json 2>/dev/null' % bk)
    try:
        data = json.loads(out[out.index('{'):])
    except ValueError:
        return {}
    peaks = {}
    for prec, bench in PEAK_BENCHMARKS.items():
        vals = [b['GFLOP/s'] for b in data.get('benchmarks', []) if b['name'].split('/iterations')[0].startswith(bench)
                and 'GFLOP/s' in b]
        if vals:
            peaks[prec] = max(vals)
    return peaks


def stats(v):
    return statistics.median(v), min(v), max(v)


def write_markdown(res, path, svg_rel):
    m = res['machine']
    ver = res.get('versions', {})
    loads = res['load_samples']
    lines = []
    lines.append('# Benchmarks: vitcc vs ONNX Runtime vs PyTorch eager\n')
    lines.append('Written by `tools/bench/compare.py` on %s; do not edit by hand, re-run it.\n' % res['date'])
    lines.append('Batch 1, the same ONNX file and input for every runtime (PyTorch runs the module that '
                 'file was exported from, with the same weights; ONNX Runtime int8 runs that file rewritten by '
                 '`tools/bench/ort_quantize.py` as `quantize_dynamic` writes it). vitcc runs at each precision of '
                 '`vitcc-pack --precision` (docs/PRECISION.md), one row each. Each (runtime, precision, threads) '
                 'ran as %d fresh '
                 'processes, interleaved with the others, each doing %d untimed and %d timed forward passes: '
                 'medians, min and max are over the %d timed runs. Ratios are vitcc\'s median over the other '
                 'runtime\'s at the same thread count (below 1: vitcc is faster). Peak RSS is ru_maxrss of each '
                 'process (median over its %d processes; for vitcc the larger of vitcc-run and the compiled '
                 'runner it starts).\n' % (res['rounds'], res['warmup'], res['runs'], res['rounds'] * res['runs'], res['rounds']))
    lines.append('## Machine and versions\n')
    lines.append('| | |\n|---|---|')
    lines.append('| CPU | %s, %s cores%s, %s GiB |' % (m['cpu'], m['cores'], ', AVX-512' if m['avx512'] else '', m['memory_gib']))
    peaks = m.get('peaks_1core') or ({'fp32': float(m['peak_gflops_1core'])} if m.get('peak_gflops_1core') else {})
    if 'vnni' in m:
        lines.append('| int8 / matrix extensions | AVX512-VNNI or AVX-VNNI: %s; AMX: %s |'
                     % ('yes' if m['vnni'] else 'no', 'yes' if m['amx'] else 'no'))
    for prec, what in (('fp32', 'GFLOP/s, 16 FMA chains'), ('bf16', 'GFLOP/s, the FMA chains with the bf16 kernel\'s '
                                                                     'widening of B'),
                       ('int8', 'GOP/s, 16 chains of the int8 GEMM\'s dot-product instruction')):
        if peaks.get(prec):
            lines.append('| measured %s peak, one core | %.0f %s (`vitcc_bench_kernels --benchmark_filter=%s`) |'
                         % (prec, peaks[prec], what, PEAK_BENCHMARKS[prec]))
    lines.append('| Linux | %s |' % m['kernel'])
    lines.append('| load average (1 min) | %.2f at start, %.2f-%.2f during, %.2f at the end (the benchmark\'s own '
                 'processes count: up to ~2 while a 2-thread run is on) |' % (loads[0], min(loads), max(loads), loads[-1]))
    lines.append('| vitcc | %s, %s, `-O2 -march=native` |' % (m['vitcc'], m['compiler']))
    lines.append('| ONNX Runtime | %s (npm onnxruntime-node, node %s), graph optimisation level all |' % (ver.get('onnxruntime', '?'), m['node']))
    lines.append('| PyTorch | %s (Debian), BLAS %s, inference_mode |' % (ver.get('pytorch', '?'), m['blas'] or '?'))
    lines.append('')
    lines.append('Command: `%s`\n' % res['command'])
    if loads[0] > 1.0:
        lines.append('**Provisional**: the load average was %.2f when the run started (other work on the machine); '
                     're-run the command above on a quiet machine for final figures.\n' % loads[0])

    rts = res['runtimes']
    threads = sorted({t for _, _, t in rts})
    precs = res.get('precisions') or ['fp32']
    lines.append('## Latency (ms per image)\n')
    lines.append('One row per vitcc precision; the other runtimes\' figures repeat on each row of their model. '
                 '"% of peak" is the model\'s FLOPs (vitcc-pack\'s count, multiply-add = 2) at vitcc\'s median '
                 'time, over threads x the one-core peak of that row\'s precision (table above). Ratios: vitcc\'s '
                 'median over the other runtime\'s, same thread count.\n')
    for t in threads:
        others = [(k, l) for k, l, tt in rts if tt == t and not k.startswith('vitcc')]
        head = ('| model (%d thread%s) | vitcc precision | vitcc median [min-max] | %% of peak |' % (t, 's' if t > 1 else '')
                + ''.join(' %s median [min-max] |' % l for _, l in others)
                + ''.join(' vitcc / %s |' % l for _, l in others))
        lines.append(head)
        lines.append('|---|---|---:|---:|' + '---:|' * (2 * len(others)))
        for name, e in res['models'].items():
            base = {}
            cells = ''
            for k, _ in others:
                v = e['runs'].get('%s/%d' % (k, t), [])
                if v:
                    md, lo, hi = stats(v)
                    base[k] = md
                    cells += ' %.1f [%.1f-%.1f] |' % (md, lo, hi)
                else:
                    cells += ' - |'
            for prec in precs:
                pe = e.get('precision', {}).get(prec, {})
                v = e['runs'].get('%s/%d' % (vitcc_key(prec), t), [])
                if v:
                    md, lo, hi = stats(v)
                    peak = peaks.get(prec)
                    pct = ('%.0f%%' % (pe['flops'] / (md * 1e-3) / (peak * 1e9 * t) * 100)) if peak and pe.get('flops') else '-'
                    label = prec + (' (unchecked: its pack-time accuracy check refuses these weights)' if pe.get('unchecked') else '')
                    row = '| %s | %s | **%.1f** [%.1f-%.1f] | %s |' % (name, label, md, lo, hi, pct)
                    ratios = ''.join((' %.2fx |' % (md / base[k])) if k in base else ' - |' for k, _ in others)
                else:
                    why = pe.get('refused')
                    row = '| %s | %s | %s | - |' % (name, prec, ('not run: ' + why.replace('|', '/')[:160]) if why else '-')
                    ratios = ' - |' * len(others)
                lines.append(row + cells + ratios)
        lines.append('')
    oq = [(n, e['ort_int8']) for n, e in res['models'].items() if e.get('ort_int8')]
    if oq:
        lines.append('ONNX Runtime int8 models (`tools/bench/ort_quantize.py`, `quantize_dynamic`\'s defaults: uint8 '
                     'activations with zero point, symmetric int8 weights, one scale per tensor):\n')
        for n, q in oq:
            lines.append('- %s: %s. %s' % (n, q.get('summary', ''), q.get('check', '')))
        lines.append('')

    lines.append('## Peak RSS (MiB per process)\n')
    ids = ['%s/%d' % (k, t) for k, _, t in rts]
    lines.append('| model | weights MB | vitcc workspace MB (1 / 2 threads) |' + ''.join(' %s %d thr |' % (l, t) for _, l, t in rts))
    lines.append('|---|---:|---:|' + '---:|' * len(rts))
    for name, e in res['models'].items():
        ws = e.get('workspace_bytes', {})
        wtxt = ' / '.join('%.1f' % (ws['vitcc/%d' % t] / 1e6) for t in threads if 'vitcc/%d' % t in ws)
        lines.append('| %s | %s | %s |' % (name, '%.1f' % (e['weights_bytes'] / 1e6) if 'weights_bytes' in e else '-', wtxt or '-') +
                     ''.join(' %.0f |' % statistics.median(e['rss_mib'][i]) if e['rss_mib'].get(i) else ' - |' for i in ids))
    lines.append('')
    lines += targets_section(res)
    lines += suite_section(res)
    lines.append('## vitcc output vs the PyTorch reference\n')
    for name, e in res['models'].items():
        for prec in precs:
            pe = e.get('precision', {}).get(prec)
            parity = pe.get('parity') if pe else (e.get('parity') if prec == 'fp32' else None)
            if parity:
                lines.append('- %s %s: %s%s' % (name, prec, parity.replace('parity  ', ''),
                                                ('; timed from an unchecked pack: ' + pe['refused']) if pe.get('unchecked') else ''))
            elif pe and pe.get('refused'):
                lines.append('- %s %s: not run: %s' % (name, prec, pe['refused']))
    lines.append('')
    lines.append('![latency chart](%s)\n' % svg_rel)
    with open(path, 'w') as f:
        f.write('\n'.join(lines))


# Issue 4's latency targets: (model, threads, the largest vitcc / ONNX Runtime ratio allowed).
LATENCY_TARGETS = [('vit_s16', 1, 0.8), ('vit_b16', 1, 0.8), ('dinov2_s14_518', 1, 0.65), ('efficientvit_m5', 1, 0.5),
                   ('vit_s16', 2, 0.8), ('vit_b16', 2, 0.8), ('dinov2_s14_518', 2, 0.8), ('efficientvit_m5', 2, 0.8)]


# Issue 11's int8 targets, for an AVX512-VNNI CPU without AMX, one thread: (model, vitcc precision,
# baseline runtime, the largest vitcc / baseline ratio allowed).
PRECISION_TARGETS = [('vit_s16', 'int8', 'onnxruntime', 0.35), ('vit_s16', 'int8', 'onnxruntime-int8', 0.8),
                     ('vit_b16', 'int8', 'onnxruntime', 0.35), ('vit_b16', 'int8', 'onnxruntime-int8', 0.8),
                     ('dinov2_s14_518', 'int8', 'onnxruntime', 0.45), ('efficientvit_m5', 'int8', 'onnxruntime', 0.6)]
BASELINE_LABELS = {'onnxruntime': 'ONNX Runtime fp32', 'onnxruntime-int8': 'ONNX Runtime int8'}


def precision_targets(res):
    out = []
    m = res.get('machine', {})
    if m.get('amx'):
        out.append('| (the int8 targets are set for a CPU without AMX; this one has it) | | |')
    for name, prec, base, limit in PRECISION_TARGETS:
        e = res['models'].get(name)
        if not e:
            continue
        v, o = e['runs'].get('%s/1' % vitcc_key(prec)), e['runs'].get('%s/1' % base)
        what = '%s, 1 thread: vitcc %s <= %.2fx %s' % (name, prec, limit, BASELINE_LABELS[base])
        if e.get('precision', {}).get(prec, {}).get('unchecked'):
            what += ' (unchecked pack: accuracy refused on these weights)'
        if v and o:
            r = statistics.median(v) / statistics.median(o)
            out.append('| %s | %.2fx | %s |' % (what, r, 'yes' if r <= limit else '**no**'))
        elif e.get('precision', {}).get(prec, {}).get('refused'):
            out.append('| %s | not run (%s refused) | **no** |' % (what, prec))
    for name, e in res['models'].items():
        f, b = e['runs'].get('vitcc/1'), e['runs'].get('vitcc-bf16/1')
        if f and b:
            r = statistics.median(b) / statistics.median(f)
            out.append('| %s, 1 thread: vitcc bf16 not slower than vitcc fp32 | %.2fx | %s |'
                       % (name, r, 'yes' if r <= 1.0 else '**no**'))
    return out


def targets_section(res):
    out = ['## Targets\n', '| target | measured | met |', '|---|---:|:---:|']
    out += precision_targets(res)
    for name, t, limit in LATENCY_TARGETS:
        e = res['models'].get(name)
        v, o = (e['runs'].get('vitcc/%d' % t), e['runs'].get('onnxruntime/%d' % t)) if e else (None, None)
        if v and o:
            r = statistics.median(v) / statistics.median(o)
            out.append('| %s, %d thread%s: vitcc fp32 <= %.2fx ONNX Runtime fp32 | %.2fx | %s |'
                       % (name, t, 's' if t > 1 else '', limit, r, 'yes' if r <= limit else '**no**'))
    suite = res.get('suite', {})
    gemms = [(v['pct_peak'], n) for n, v in suite.items()
             if re.match(r'gemm/M:\d+/K:(\d+)/', n) and int(re.match(r'gemm/M:\d+/K:(\d+)/', n).group(1)) >= 384
             and '/threads:1/' in n and v.get('pct_peak') is not None]
    if gemms:
        lo = min(gemms)
        out.append('| GEMM >= 85%% of peak for K >= 384 (1 thread, %d shapes) | %.1f%% .. %.1f%% (lowest: %s) | %s |'
                   % (len(gemms), lo[0], max(gemms)[0], re.sub(r'/(min_time:[0-9.]+|real_time)', '', lo[1]),
                      'yes' if lo[0] >= 85 else '**no**'))
    vb = [v for n, v in suite.items() if n.startswith('model/vit_b16/threads:1/') and v.get('pct_peak') is not None]
    if vb:
        out.append('| whole ViT-B/16 >= 75%% of peak (1 thread) | %.1f%% | %s |'
                   % (vb[0]['pct_peak'], 'yes' if vb[0]['pct_peak'] >= 75 else '**no**'))
    e = res['models'].get('vit_s16')
    if e and e['rss_mib'].get('vitcc/1'):
        rss = statistics.median(e['rss_mib']['vitcc/1']) * 2**20
        ws = e['workspace_bytes'].get('vitcc/1', 0)
        bound = e['weights_bytes'] + ws + 16 * 2**20
        out.append('| vit_s16 peak RSS <= weights + workspace + 16 MiB (%.1f MiB) | %.1f MiB | %s |'
                   % (bound / 2**20, rss / 2**20, 'yes' if rss <= bound else '**no**'))
        if e['rss_mib'].get('onnxruntime/1'):
            ort = statistics.median(e['rss_mib']['onnxruntime/1']) * 2**20
            out.append('| vit_s16 peak RSS <= 0.5x ONNX Runtime\'s (%.0f MiB) | %.2fx | %s |'
                       % (ort / 2**20, rss / ort, 'yes' if rss <= 0.5 * ort else '**no**'))
    out.append('')
    return out


def write_svg(res, path):
    """Grouped horizontal bars: one group per model, one bar per (runtime, threads), the median in ms
    written at the end of each bar."""
    colors = {'vitcc': '#1f77b4', 'vitcc-bf16': '#17becf', 'vitcc-int8': '#2ca02c', 'onnxruntime': '#ff7f0e',
              'onnxruntime-int8': '#d62728', 'pytorch': '#7f7f7f'}
    rts = res['runtimes']
    bar_h, gap, left, width = 14, 18, 150, 520
    models = [(n, e) for n, e in res['models'].items()]
    height = 50 + len(models) * (len(rts) * bar_h + gap) + 30
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">'
           % (left + width + 140, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="10" y="20" font-size="14">Latency, batch 1, by runtime and precision (median ms; shorter is faster)</text>']
    y = 40
    for name, e in models:
        meds = {}
        for k, l, t in rts:
            v = e['runs'].get('%s/%d' % (k, t), [])
            if v:
                meds[(k, t)] = statistics.median(v)
        # Scale to the slower of vitcc and ONNX Runtime (x1.5); slower bars are clipped and marked.
        core = [v for (k, _), v in meds.items() if k not in ('pytorch',)] or list(meds.values()) or [1.0]
        top = 1.5 * max(core)
        out.append('<text x="10" y="%d" font-weight="bold">%s</text>' % (y + len(rts) * bar_h / 2 + 4, name))
        for k, l, t in rts:
            if (k, t) in meds:
                w = width * min(1.0, meds[(k, t)] / top)
                out.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s" fill-opacity="%s"/>'
                           % (left, y, w, bar_h - 2, colors[k], '1' if t == 1 else '0.55'))
                out.append('<text x="%.1f" y="%d">%s %dt: %.1f%s</text>' % (left + w + 4, y + bar_h - 4, l, t, meds[(k, t)],
                                                                         ' (off scale)' if meds[(k, t)] > top else ''))
            y += bar_h
        y += gap
    out.append('<text x="10" y="%d" fill="#555">%s; %s</text>' % (height - 10, res['machine']['cpu'], res['date']))
    out.append('</svg>')
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        f.write('\n'.join(out))


if __name__ == '__main__':
    main()
