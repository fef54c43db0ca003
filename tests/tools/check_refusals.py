#!/usr/bin/env python3
"""Runs vitcc-pack on every case of make_bad_models.py and checks that each is refused:
non-zero exit, exactly one line on stderr starting 'vitcc-pack: error:', naming the file and
containing every expected substring, and no output file written. Cases marked accept (edge cases
that look like refusals but are valid) must pack instead: exit 0, a config written.

Usage: check_refusals.py VITCC_PACK CASES_DIR OUT_DIR
"""
import json
import os
import shutil
import subprocess
import sys


def main(pack, cases_dir, out_dir):
    with open(os.path.join(cases_dir, 'cases.json')) as f:
        cases = json.load(f)['cases']
    failures = 0
    for case in cases:
        path = os.path.join(cases_dir, case['file'])
        out = os.path.join(out_dir, case['file'].replace('/', '_') + '.out')
        shutil.rmtree(out, ignore_errors=True)
        p = subprocess.run([pack, path, '-o', out, '--name', 'm'], capture_output=True, text=True, timeout=600)
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        problems = []
        if case.get('accept'):
            if p.returncode != 0:
                problems.append(f'was refused: {lines[-1] if lines else ""}')
            elif not os.path.isfile(os.path.join(out, 'm.json')):
                problems.append('packed without writing m.json')
            status = 'ok  ' if not problems else 'FAIL'
            print(f'{status} {case["file"]}: accepted as it should be')
            for pr in problems:
                print(f'     - {pr}')
            failures += bool(problems)
            continue
        if p.returncode == 0:
            problems.append('was accepted')
        elif p.returncode not in (3, 5):  # README "Exit codes": an invalid input, or a model vitcc does not pack
            problems.append(f'exit {p.returncode}, expected 3 (invalid input) or 5 (unsupported model)')
        if len(lines) != 1:
            problems.append(f'stderr has {len(lines)} lines, expected one')
        msg = lines[0] if lines else ''
        if not msg.startswith('vitcc-pack: error:'):
            problems.append('stderr does not start with "vitcc-pack: error:"')
        if os.path.basename(case['file']) not in msg:
            problems.append('the error does not name the file')
        # The expected words must come from the explanation, not from the file's own path.
        explanation = msg.replace(path, '<file>').replace(os.path.abspath(cases_dir), '<dir>').replace(cases_dir, '<dir>')
        for want in case['expect']:
            if want.lower() not in explanation.lower():
                problems.append(f'the error lacks {want!r}')
        if os.path.isdir(out) and os.listdir(out):
            problems.append(f'left files behind: {os.listdir(out)}')
        status = 'ok  ' if not problems else 'FAIL'
        print(f'{status} {case["file"]}: {msg}')
        for pr in problems:
            print(f'     - {pr}')
        failures += bool(problems)
    print(f'{len(cases) - failures} passed, {failures} failed')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main(*sys.argv[1:4]))
