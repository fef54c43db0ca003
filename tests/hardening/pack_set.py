#!/usr/bin/env python3
"""Checks, file by file, what one model name's outputs in a vitcc-pack folder hold (docs/FORMAT.md,
"Files"), for the kill test of cli_hardening.sh. Every file must be whole and every file that names
another must name one that is there and whole:

  NAME.<tag>.vitcc   its recorded size and checksum are its own, and the checksum is its tag;
  NAME.<tag>.hpp     its FNV-1a is its tag; its blob_file is there and its blob_checksum that blob's;
  NAME.json          its blob and header are there, with the checksums it records;
  NAME.hpp           includes a NAME.<tag>.hpp that is there;
  NAME_weights.h     complete, its bytes hash to its NAME_BLOB_CHECKSUM;
  NAME_blob.s        .incbin's a NAME.<tag>.vitcc that is there;
  NAME_blob.o        the bytes in its section hash to a blob checksum;
  NAME_blob.h        complete, with a NAME_BLOB_CHECKSUM.

It prints one line naming, for each view, the blob it leads to (its checksum; '-' when absent):
  config=0x.. header=0x.. weights=0x.. stub=0x.. object=0x.. object_h=0x..
and exits 1 with the reason when anything is not whole or not consistent, or when the folder holds
anything else: only a temporary 'FILE.tmp.PID' of the killed run (PID given) may be there, and with
--exact nothing but the files NAME.json and NAME.hpp lead to (plus the embedded outputs).

Usage: pack_set.py DIR NAME [--killed PID] [--exact] [--memo FILE]
(--memo: a file remembering the checksums of contents already hashed, by their SHA-256; the kill
test checks the same few blobs dozens of times.)
"""
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

M64 = (1 << 64) - 1


MEMO = {}


def memoized(kind, data, fn):
    key = kind + ':' + hashlib.sha256(data).hexdigest()
    if key not in MEMO:
        MEMO[key] = fn(data)
    return MEMO[key]


def blob_checksum(data):
    return memoized('blob', data, blob_checksum_of)


def blob_checksum_of(data):
    """vitcc::blob::checksum (docs/FORMAT.md), the field at offset 32 read as zero."""
    h = 0xcbf29ce484222325
    n = len(data) - len(data) % 8
    words = memoryview(data)[:n].cast('Q')
    for i, w in enumerate(words):
        if i == 4:
            w = 0
        h = ((h ^ w) * 0x100000001b3) & M64
        h ^= h >> 29
    for b in data[n:]:
        h = ((h ^ b) * 0x100000001b3) & M64
    return h ^ (h >> 32)


def fnv1a(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & M64
    return h


class Broken(Exception):
    pass


def main():
    args = sys.argv[1:]
    exact = '--exact' in args
    killed = None
    if '--killed' in args:
        killed = args[args.index('--killed') + 1]
    memo_file = args[args.index('--memo') + 1] if '--memo' in args else None
    if memo_file and os.path.exists(memo_file):
        with open(memo_file) as fh:
            MEMO.update(json.load(fh))
    d, name = args[0], args[1]
    ident = re.sub(r'[^A-Za-z0-9]', '_', name)
    if not ident or ident[0].isdigit():
        ident = 'm_' + ident
    up = ident.upper()
    files = sorted(os.listdir(d))
    tagged = re.compile(re.escape(name) + r'\.([0-9a-f]{16})\.(vitcc|hpp)$')
    stable = {name + '.json', name + '.hpp', name + '_weights.h', name + '_blob.s', name + '_blob.h', name + '_blob.o'}

    def read(f):
        with open(os.path.join(d, f), 'rb') as fh:
            return fh.read()

    whole = {}  # tagged file -> the blob checksum it leads to

    def tagged_file(f):
        if f in whole:
            return whole[f]
        m = tagged.match(f)
        if not m or f not in files:
            raise Broken('%s: missing or not a tagged file of %s' % (f, name))
        tag = int(m.group(1), 16)
        data = read(f)
        if m.group(2) == 'vitcc':
            if len(data) < 64 or data[:8] != b'VITCCBLB':
                raise Broken('%s: not a blob (%d bytes)' % (f, len(data)))
            recorded_size = int.from_bytes(data[24:32], 'little')
            recorded = int.from_bytes(data[32:40], 'little')
            if recorded_size != len(data) or recorded != tag or blob_checksum(data) != tag:
                raise Broken('%s: not whole (size %d, records %d bytes and checksum %016x)' % (f, len(data), recorded_size, recorded))
            whole[f] = tag
        else:
            if fnv1a(data) != tag:
                raise Broken('%s: its bytes do not hash to its tag (a partial or edited header)' % f)
            text = data.decode()
            bf = re.search(r'blob_file = "([^"]+)"', text)
            bc = re.search(r'blob_checksum = 0x([0-9a-f]{16})ull', text)
            if not bf or not bc:
                raise Broken('%s: no blob_file or blob_checksum' % f)
            if tagged_file(bf.group(1)) != int(bc.group(1), 16):
                raise Broken('%s: names blob %s but another blob_checksum' % (f, bf.group(1)))
            whole[f] = int(bc.group(1), 16)
        return whole[f]

    views = {}
    led_to = set()
    try:
        for f in files:
            t = re.match(r'(.+)\.tmp\.(\d+)$', f)
            if t:
                if t.group(2) != killed or not (t.group(1) in stable or tagged.match(t.group(1))):
                    raise Broken('%s: a temporary that is not the killed run\'s' % f)
            elif f not in stable and not tagged.match(f):
                raise Broken('%s: not a file of %s' % (f, name))
            elif tagged.match(f):
                tagged_file(f)  # every tagged file is whole, whoever names it
        if name + '.json' in files:
            cfg = json.loads(read(name + '.json'))
            blob_file, header = cfg['blob']['file'], cfg['header']
            cs = tagged_file(blob_file)
            if cs != int(cfg['blob']['checksum'], 16) or os.path.getsize(os.path.join(d, blob_file)) != cfg['blob']['bytes']:
                raise Broken('%s.json: blob %s is not the one it records' % (name, blob_file))
            if tagged_file(header) != cs or fnv1a(read(header)) != int(cfg['header_checksum'], 16):
                raise Broken('%s.json: header %s is not the one it records' % (name, header))
            views['config'] = cs
            led_to |= {blob_file, header}
        if name + '.hpp' in files:
            inc = re.findall(r'#include "([^"]+)"', read(name + '.hpp').decode())
            if len(inc) != 1:
                raise Broken('%s.hpp: expected one #include' % name)
            views['header'] = tagged_file(inc[0])
            text = read(inc[0]).decode()
            led_to |= {inc[0], re.search(r'blob_file = "([^"]+)"', text).group(1)}
        if name + '_weights.h' in files:
            text = read(name + '_weights.h').decode()
            cs = re.search(r'#define %s_BLOB_CHECKSUM 0x([0-9a-f]{16})ull' % up, text)
            size = re.search(r'#define %s_BLOB_BYTES (\d+)u' % up, text)
            if not cs or not size or not text.endswith('};\n\n#endif\n'):
                raise Broken('%s_weights.h: incomplete' % name)
            def array_checksum(raw):
                body = raw[raw.index(b'= {\n#endif\n') + 11:raw.rindex(b'};')]
                data = bytes.fromhex(body.replace(b'0x', b'').replace(b',', b'').replace(b'\n', b'').decode())
                return [len(data), blob_checksum_of(data)]
            n, got = memoized('array', read(name + '_weights.h'), array_checksum)
            if n != int(size.group(1)) or got != int(cs.group(1), 16):
                raise Broken('%s_weights.h: its bytes are not the blob it names' % name)
            views['weights'] = int(cs.group(1), 16)
        if name + '_blob.s' in files:
            inc = re.search(r'\.incbin "([^"]+)"', read(name + '_blob.s').decode())
            if not inc:
                raise Broken('%s_blob.s: no .incbin' % name)
            views['stub'] = tagged_file(inc.group(1))
            led_to.add(inc.group(1))
        if name + '_blob.o' in files:
            with tempfile.TemporaryDirectory() as tmp:
                out = os.path.join(tmp, 'blob.bin')
                subprocess.run(['objcopy', '-O', 'binary', '--only-section=.rodata.vitcc.' + ident,
                                os.path.join(d, name + '_blob.o'), out], check=True)
                with open(out, 'rb') as fh:
                    data = fh.read()
            recorded = int.from_bytes(data[32:40], 'little') if len(data) >= 64 else -1
            if blob_checksum(data) != recorded:
                raise Broken('%s_blob.o: its section does not hold a whole blob' % name)
            views['object'] = recorded
        if name + '_blob.h' in files:
            text = read(name + '_blob.h').decode()
            cs = re.search(r'#define %s_BLOB_CHECKSUM 0x([0-9a-f]{16})ull' % up, text)
            if not cs or not text.endswith('#endif\n'):
                raise Broken('%s_blob.h: incomplete' % name)
            views['object_h'] = int(cs.group(1), 16)
        if exact:
            extra = [f for f in files if tagged.match(f) and f not in led_to]
            if extra:
                raise Broken('left behind: %s' % ', '.join(extra))
    except Broken as e:
        print('pack_set: %s: %s' % (d, e), file=sys.stderr)
        sys.exit(1)
    finally:
        if memo_file:
            with open(memo_file, 'w') as fh:
                json.dump(MEMO, fh)
    keys = ['config', 'header', 'weights', 'stub', 'object', 'object_h']
    print(' '.join('%s=%s' % (k, '0x%016x' % views[k] if k in views else '-') for k in keys))


if __name__ == '__main__':
    main()
