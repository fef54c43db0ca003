#!/usr/bin/python3
"""vitcc vs ONNX Runtime vs PyTorch eager on the same ONNX files and inputs; writes BENCHMARKS.md and an
SVG chart. Run through tools/bench/compare.sh (`make bench-compare`), which builds what this needs.

For every model of benchmarks/models.txt (NAME FIXTURE):
  * the fixture (tools/export/make_fixtures.py) gives model.onnx, input.bin and reference.bin; it is
    generated into --fixtures when missing;
  * vitcc-pack packs model.onnx; vitcc-run runs it (its per-model runner is compiled once, before timing,
    and its output is checked against reference.bin);
  * ONNX Runtime (npm onnxruntime-node, all graph optimisations) runs the same model.onnx and input.bin;
  * PyTorch eager runs the module the ONNX file was exported from, with the same weights and input.
Each runtime runs at 1 and 2 intra-op threads. Timing: --rounds rounds; in each round every
(runtime, threads) pair runs once as a fresh process (order rotated per round, so runtimes are
interleaved and drift hits all alike) doing --warmup untimed then --runs timed forward passes. The
table gives the median over all timed runs (rounds x runs >= 20), min and max, vitcc's ratio to each
other runtime at the same thread count, and the peak RSS of the processes (ru_maxrss from wait4, median
over the rounds; for vitcc-run it is the larger of the driver and the runner it starts).
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
    def __init__(self, key, label, threads):
        self.key, self.label, self.threads = key, label, threads

    @property
    def id(self):
        return '%s/%d' % (self.key, self.threads)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--build', default=os.path.join(ROOT, 'build-bench'))
    ap.add_argument('--fixtures', default=None,
                    help='colon-separated fixture folders to look in first; missing fixtures are generated into '
                         'BUILD/fixtures')
    ap.add_argument('--ort', default=None, help='onnxruntime-node folder (default BUILD/ort/node_modules/onnxruntime-node)')
    ap.add_argument('--models', default='', help='comma-separated NAMEs of benchmarks/models.txt (default: all)')
    ap.add_argument('--runtimes', default='vitcc,onnxruntime,pytorch')
    ap.add_argument('--threads', default='1,2')
    ap.add_argument('--rounds', type=int, default=4)
    ap.add_argument('--runs', type=int, default=6, help='timed runs per process (rounds x runs >= 20)')
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--out', default=os.path.join(ROOT, 'BENCHMARKS.md'))
    ap.add_argument('--svg', default=os.path.join(ROOT, 'benchmarks', 'comparison.svg'))
    ap.add_argument('--json', default=None, help='raw results (default BUILD/compare.json)')
    ap.add_argument('--command', default=None, help='the command line to quote in BENCHMARKS.md')
    ap.add_argument('--no-suite', action='store_true', help='skip the Google Benchmark kernel/model figures')
    args = ap.parse_args()

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
    runtimes = []
    for key in args.runtimes.split(','):
        label = {'vitcc': 'vitcc', 'onnxruntime': 'ONNX Runtime', 'pytorch': 'PyTorch eager'}[key]
        runtimes += [Runtime(key, label, t) for t in thread_counts]

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
        mdir = os.path.join(models_dir, name)
        cfg_path = os.path.join(mdir, name + '.json')
        if not os.path.exists(cfg_path) or os.path.getmtime(cfg_path) < os.path.getmtime(os.path.join(fdir, 'model.onnx')):
            log('%s: vitcc-pack' % name)
            if subprocess.call([pack, os.path.join(fdir, 'model.onnx'), '-o', mdir, '--name', name],
                               stdout=subprocess.DEVNULL) != 0:
                log('%s: vitcc-pack refused the model, skipped' % name)
                continue
        # The config as vitcc-run's checked reader sees it; this script never parses NAME.json.
        info = subprocess.run([run, cfg_path, '--info'], capture_output=True, text=True)
        if info.returncode != 0:
            log('%s: %s' % (name, info.stderr.strip()))
            continue
        cfg = json.loads(info.stdout)
        # Compile the runner (cached) and check parity before any timing.
        tmp_out = os.path.join(build, 'compare-out.bin')
        rc, out, err, _ = run_measured([run, cfg_path, '--input', os.path.join(fdir, 'input.bin'), '--output', tmp_out,
                                        '--reference', os.path.join(fdir, 'reference.bin')], env)
        if rc != 0:
            log('%s: vitcc-run failed: %s %s' % (name, out, err))
            continue
        parity = re.search(r'parity .*', out)
        entry = {'fixture': fixture, 'weights_bytes': cfg['blob']['bytes'], 'parity': parity.group(0) if parity else '',
                 'runs': {}, 'rss_mib': {}, 'workspace_bytes': {}}
        for rt in runtimes:
            entry['runs'][rt.id] = []
            entry['rss_mib'][rt.id] = []
        for r in range(args.rounds):
            results['load_samples'].append(loadavg())
            order = runtimes[r % len(runtimes):] + runtimes[:r % len(runtimes)]
            for rt in order:
                if rt.key == 'vitcc':
                    cmd = [run, cfg_path, '--input', os.path.join(fdir, 'input.bin'), '--output', tmp_out,
                           '--repeat', str(args.runs), '--threads', str(rt.threads)]
                elif rt.key == 'onnxruntime':
                    cmd = ['node', os.path.join(HERE, 'ort_runner.js'), ort_dir, os.path.join(fdir, 'model.onnx'),
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
                if rt.key == 'vitcc':
                    m = re.search(r'runs_ms (\S+)', out)
                    times = [float(v) for v in m.group(1).split(',')] if m else []
                    ws = re.search(r'workspace (\d+) bytes', out)
                    if ws:
                        entry['workspace_bytes'][rt.id] = int(ws.group(1))
                else:
                    rec = json.loads(out.strip().splitlines()[-1])
                    times = rec['times_ms']
                    results.setdefault('versions', {})[rt.key] = rec['version']
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
    with open(json_out, 'w') as f:
        json.dump(results, f, indent=1)
    write_markdown(results, args.out, os.path.relpath(args.svg, os.path.dirname(os.path.abspath(args.out))))
    write_svg(results, args.svg)
    log('wrote %s, %s and %s' % (args.out, args.svg, json_out))


# The Google Benchmark figures BENCHMARKS.md quotes (the whole suite: `make bench`).
SUITE_KERNELS = ('peak|gemm/M:(197|1370)/K:(384|768|1536|3072)/.*threads:1|attention/T:(197|257|1370)/D:64/heads:6/'
                 '|block/')


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
             '%%peak is of the fp32 peak the suite measures itself (16 independent FMA chains) times the '
             'threads; GFLOP/s count 2 per multiply-add, wall-clock time.\n' % 'BUILD',
             '| benchmark | ms | GFLOP/s | % of peak |', '|---|---:|---:|---:|']
    for name, v in suite.items():
        short = re.sub(r'/(min_time:[0-9.]+|real_time|manual_time|iterations:\d+)', '', name)
        g = '%.1f' % v['gflops'] if v.get('gflops') is not None else '-'
        pk = '%.1f' % v['pct_peak'] if v.get('pct_peak') is not None else '-'
        lines.append('| %s | %.3f | %s | %s |' % (short, v['real_ms'], g, pk))
    lines.append('')
    return lines


def machine_info(build):
    cpu = sh("lscpu | sed -n 's/^Model name: *//p' | head -n1")
    flags = sh("grep -m1 -o -w 'avx512f' /proc/cpuinfo")
    peak = ''
    bk = os.path.join(build, 'bin', 'vitcc_bench_kernels')
    if os.path.exists(bk):
        out = sh('%s --benchmark_filter=peak --benchmark_format=json 2>/dev/null' % bk)
        try:
            data = json.loads(out[out.index('{'):])
            vals = [b['GFLOP/s'] for b in data['benchmarks'] if b['name'].startswith('peak')]
            peak = '%.0f' % max(vals)
        except (ValueError, KeyError):
            peak = ''
    return {
        'cpu': cpu, 'cores': os.cpu_count(), 'avx512': bool(flags), 'kernel': platform.release(),
        'memory_gib': round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30, 1),
        'peak_gflops_1core': peak,
        'compiler': sh("c++ --version | head -n1"),
        'node': sh('node --version'),
        'blas': sh("update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | sed -n 's/^Value: //p'"),
        'vitcc': sh("sed -n 's/#define VITCC_VERSION_\\(MAJOR\\|MINOR\\|PATCH\\) //p' %s | paste -sd." %
                    os.path.join(ROOT, 'include', 'vitcc', 'version.hpp')),
    }


def stats(v):
    return statistics.median(v), min(v), max(v)


def write_markdown(res, path, svg_rel):
    m = res['machine']
    ver = res.get('versions', {})
    loads = res['load_samples']
    lines = []
    lines.append('# Benchmarks: vitcc vs ONNX Runtime vs PyTorch eager\n')
    lines.append('Written by `tools/bench/compare.py` on %s; do not edit by hand, re-run it.\n' % res['date'])
    lines.append('Batch 1, fp32, the same ONNX file and input for every runtime (PyTorch runs the module that '
                 'file was exported from, with the same weights). Each (runtime, threads) pair ran as %d fresh '
                 'processes, interleaved with the others, each doing %d untimed and %d timed forward passes: '
                 'medians, min and max are over the %d timed runs. Ratios are vitcc\'s median over the other '
                 'runtime\'s at the same thread count (below 1: vitcc is faster). Peak RSS is ru_maxrss of each '
                 'process (median over its %d processes; for vitcc the larger of vitcc-run and the compiled '
                 'runner it starts).\n' % (res['rounds'], res['warmup'], res['runs'], res['rounds'] * res['runs'], res['rounds']))
    lines.append('## Machine and versions\n')
    lines.append('| | |\n|---|---|')
    lines.append('| CPU | %s, %s cores%s, %s GiB |' % (m['cpu'], m['cores'], ', AVX-512' if m['avx512'] else '', m['memory_gib']))
    if m['peak_gflops_1core']:
        lines.append('| measured fp32 peak, one core | %s GFLOP/s (`vitcc_bench_kernels --benchmark_filter=peak`) |' % m['peak_gflops_1core'])
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
    lines.append('## Latency (ms per image)\n')
    for t in threads:
        cols = [(k, l) for k, l, tt in rts if tt == t]
        head = '| model (%d thread%s) |' % (t, 's' if t > 1 else '') + ''.join(' %s median [min-max] |' % l for _, l in cols)
        others = [(k, l) for k, l in cols if k != 'vitcc']
        head += ''.join(' vitcc / %s |' % l for _, l in others)
        lines.append(head)
        lines.append('|---|' + '---:|' * (len(cols) + len(others)))
        for name, e in res['models'].items():
            row = '| %s |' % name
            med = {}
            for k, _ in cols:
                v = e['runs'].get('%s/%d' % (k, t), [])
                if v:
                    md, lo, hi = stats(v)
                    med[k] = md
                    row += ' **%.1f** [%.1f-%.1f] |' % (md, lo, hi) if k == 'vitcc' else ' %.1f [%.1f-%.1f] |' % (md, lo, hi)
                else:
                    row += ' - |'
            for k, _ in others:
                row += (' %.2fx |' % (med['vitcc'] / med[k])) if 'vitcc' in med and k in med else ' - |'
            lines.append(row)
        lines.append('')

    lines.append('## Peak RSS (MiB per process)\n')
    ids = ['%s/%d' % (k, t) for k, _, t in rts]
    lines.append('| model | weights MB | vitcc workspace MB (1 / 2 threads) |' + ''.join(' %s %d thr |' % (l, t) for _, l, t in rts))
    lines.append('|---|---:|---:|' + '---:|' * len(rts))
    for name, e in res['models'].items():
        ws = e.get('workspace_bytes', {})
        wtxt = ' / '.join('%.1f' % (ws['vitcc/%d' % t] / 1e6) for t in threads if 'vitcc/%d' % t in ws)
        lines.append('| %s | %.1f | %s |' % (name, e['weights_bytes'] / 1e6, wtxt or '-') +
                     ''.join(' %.0f |' % statistics.median(e['rss_mib'][i]) if e['rss_mib'].get(i) else ' - |' for i in ids))
    lines.append('')
    lines += targets_section(res)
    lines += suite_section(res)
    lines.append('## vitcc output vs the PyTorch reference\n')
    for name, e in res['models'].items():
        lines.append('- %s: %s' % (name, e['parity'].replace('parity  ', '')))
    lines.append('')
    lines.append('![latency chart](%s)\n' % svg_rel)
    with open(path, 'w') as f:
        f.write('\n'.join(lines))


# Issue 4's latency targets: (model, threads, the largest vitcc / ONNX Runtime ratio allowed).
LATENCY_TARGETS = [('vit_s16', 1, 0.8), ('vit_b16', 1, 0.8), ('dinov2_s14_518', 1, 0.65), ('efficientvit_m5', 1, 0.5),
                   ('vit_s16', 2, 0.8), ('vit_b16', 2, 0.8), ('dinov2_s14_518', 2, 0.8), ('efficientvit_m5', 2, 0.8)]


def targets_section(res):
    out = ['## Targets\n', '| target | measured | met |', '|---|---:|:---:|']
    for name, t, limit in LATENCY_TARGETS:
        e = res['models'].get(name)
        v, o = (e['runs'].get('vitcc/%d' % t), e['runs'].get('onnxruntime/%d' % t)) if e else (None, None)
        if v and o:
            r = statistics.median(v) / statistics.median(o)
            out.append('| %s, %d thread%s: vitcc <= %.2fx ONNX Runtime | %.2fx | %s |'
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
    colors = {'vitcc': '#1f77b4', 'onnxruntime': '#ff7f0e', 'pytorch': '#7f7f7f'}
    rts = res['runtimes']
    bar_h, gap, left, width = 14, 18, 150, 520
    models = [(n, e) for n, e in res['models'].items()]
    height = 50 + len(models) * (len(rts) * bar_h + gap) + 30
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">'
           % (left + width + 140, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="10" y="20" font-size="14">Latency, batch 1, fp32 (median ms; shorter is faster)</text>']
    y = 40
    for name, e in models:
        meds = {}
        for k, l, t in rts:
            v = e['runs'].get('%s/%d' % (k, t), [])
            if v:
                meds[(k, t)] = statistics.median(v)
        # Scale to the slower of vitcc and ONNX Runtime (x1.5); slower bars are clipped and marked.
        core = [v for (k, _), v in meds.items() if k != 'pytorch'] or list(meds.values()) or [1.0]
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
