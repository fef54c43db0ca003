"""vitcc for Python: run a model packed by vitcc-pack on numpy arrays.

    import vitcc
    model = vitcc.load("out/demo.json")          # compiles once per configuration, then cached
    logits = model(batch)                         # batch: (N, C, H, W) float32, normalised
    x = model.preprocess(frame)                   # frame: (H, W, 3|4) uint8 RGB(A) -> (C, H, W)

The model's code is specialised for its configuration, so load() has vitcc-compile build the
model's C API as a shared library (vitcc-compile --shared) for this machine, keeps it in the same
cache as vitcc-run's runners (VITCC_CACHE_DIR, default ~/.cache/vitcc; vitcc-run --clear-cache
empties it), and loads it. The weights are the blob next to NAME.json, mapped read-only.
"""
import hashlib
import json
import os
import shutil
import re
import subprocess
import sys
import tempfile
import warnings

import numpy as np

from . import _vitcc

__all__ = ["load", "Model", "VitccError", "cache_dir"]
__version__ = _vitcc.version


class VitccError(RuntimeError):
    """vitcc-compile failed, or the model library could not be built or bound."""


def cache_dir():
    """The folder of compiled models, as vitcc-run chooses it."""
    for var, sub in (("VITCC_CACHE_DIR", ""), ("XDG_CACHE_HOME", "vitcc")):
        v = os.environ.get(var)
        if v:
            return os.path.join(v, sub) if sub else v
    home = os.environ.get("HOME")
    if home:
        return os.path.join(home, ".cache", "vitcc")
    return os.path.join(tempfile.gettempdir(), "vitcc-cache")


def _compile_command(explicit):
    """vitcc-compile: the argument, $VITCC_COMPILE, the one of the build tree or install this module
    belongs to, or the PATH. Returned as an absolute path (it is hashed into the cache key)."""
    given = explicit or os.environ.get("VITCC_COMPILE")
    if given:
        found = shutil.which(given)
        if not found:
            raise VitccError("vitcc-compile: %s is not an executable" % given)
        return os.path.abspath(found)
    here = os.path.dirname(os.path.abspath(__file__))
    build_tree = os.path.dirname(os.path.dirname(_vitcc.build_compile_path))
    candidates = []
    if here.startswith(build_tree + os.sep):
        candidates.append(_vitcc.build_compile_path)
    # Installed: PREFIX/lib/pythonX.Y/dist-packages/vitcc -> PREFIX/bin
    up = here
    for _ in range(5):
        up = os.path.dirname(up)
        candidates.append(os.path.join(up, "bin", "vitcc-compile"))
    for c in candidates:
        if os.access(c, os.X_OK):
            return c
    found = shutil.which("vitcc-compile")
    if found:
        return os.path.abspath(found)
    raise VitccError("cannot find vitcc-compile (looked beside this module and on the PATH); set VITCC_COMPILE")


_tool_keys = {}


def _tool_key(compile_cmd):
    """What a compiled library depends on besides the config: the tool (its own bytes, which hold the
    code it generates; its version, compiler and flags, as --version says) and the library's headers
    (their names and contents)."""
    st = os.stat(compile_cmd)
    memo = (compile_cmd, st.st_size, st.st_mtime_ns)
    if memo in _tool_keys:
        return _tool_keys[memo]
    h = hashlib.sha256()
    with open(compile_cmd, "rb") as fh:
        h.update(fh.read())
    for args in (["--version"], ["--include-dir"]):
        r = subprocess.run([compile_cmd] + args, capture_output=True, text=True)
        if r.returncode != 0:
            raise VitccError("%s %s failed (exit %d): %s" % (compile_cmd, args[0], r.returncode, r.stderr.strip()))
        h.update(r.stdout.encode())
    include = os.path.join(r.stdout.strip(), "vitcc")
    for root, dirs, files in os.walk(include):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(root, f)
            h.update(os.path.relpath(p, include).encode() + b"\0")
            with open(p, "rb") as fh:
                h.update(fh.read())
    _tool_keys[memo] = h.hexdigest()
    return _tool_keys[memo]


def _read_config(path):
    """NAME.json through vitcc's one checked reader (the tools' load_model_config): every field the
    binding uses is checked and its blob resolved in the config's folder, or ValueError says which
    field is wrong. Returns (checked fields, the JSON as written)."""
    if not os.path.isfile(path):
        raise FileNotFoundError("%s: no such model config (vitcc-pack writes NAME.json)" % path)
    checked = _vitcc.read_config(path)
    with open(path, "rb") as f:
        raw = json.loads(f.read())
    return checked, raw


def _check_library_header(header, cfg):
    """vitcc-compile read NAME.json itself: the C header it wrote must be for the config this key was
    made from (a folder packed again in between would otherwise cache one model's code under another's
    key)."""
    try:
        with open(header, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise VitccError("%s: cannot read what vitcc-compile wrote: %s" % (header, e.strerror)) from None
    said = re.search(r"\(\w+, config (0x[0-9a-fA-F]{16})\)", text)
    blob = re.search(r"#define \w+_BLOB_CHECKSUM (0x[0-9a-fA-F]{16})ull", text)
    if not said or not blob or said.group(1).lower() != cfg["config_hash"].lower() \
            or blob.group(1).lower() != cfg["blob_checksum"].lower():
        raise VitccError("%s changed while it was compiled (the library is for config %s, blob %s; the config says "
                         "%s, %s): load it again" % (cfg["path"], said.group(1) if said else "?",
                                                    blob.group(1) if blob else "?", cfg["config_hash"],
                                                    cfg["blob_checksum"]))


class Model:
    """A packed model, compiled for this machine and bound to its weights. Call it on a batch."""

    def __init__(self, checked, raw, library):
        self.config_path = checked["path"]
        self.config = raw  # NAME.json as written
        self._lib = library
        self.name = checked["name"]
        self.architecture = checked["architecture"]
        self.precision = checked["precision"]
        self.input_shape = tuple(checked["input_shape"])    # (C, H, W)
        self.output_shape = tuple(checked["output_shape"])  # one image's output
        self.preprocessing = raw.get("preprocessing")       # as written (crop_pct as its decimal)
        if int(np.prod(self.input_shape)) != library.input_floats or int(np.prod(self.output_shape)) != library.output_floats:
            raise VitccError("%s: the compiled library takes %d floats and returns %d, the config says %s -> %s"
                             % (library.path, library.input_floats, library.output_floats, self.input_shape,
                                self.output_shape))

    @property
    def threads(self):
        return self._lib.workers

    @property
    def target(self):
        """The instruction-set target the library runs on this CPU (vitcc-compile --list-targets)."""
        return self._lib.target

    @property
    def isa(self):
        return self._lib.isa

    @property
    def library(self):
        return self._lib.path

    def __call__(self, images):
        """images: (N, C, H, W), floating point, normalised as the model expects (see preprocess).
        Returns float32 (N, *output_shape). The same bits whatever the thread count."""
        x = np.asarray(images)
        if x.dtype.kind != "f":
            raise TypeError("%s: expected floating-point images (N, %d, %d, %d), normalised; got dtype %s "
                            "(for uint8 camera frames, use model.preprocess(frame))"
                            % ((self.name,) + self.input_shape + (x.dtype,)))
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError("%s: expected an array of shape (N, %d, %d, %d), got %s"
                             % ((self.name,) + self.input_shape + (tuple(x.shape),)))
        n = x.shape[0]
        x = np.ascontiguousarray(x, dtype=np.float32)  # the caller's own array when it already is one
        try:
            out = self._lib.forward(x.reshape(-1), n)
        except RuntimeError as e:
            raise VitccError(str(e)) from None
        return out.reshape((n,) + self.output_shape)

    def preprocess(self, frame):
        """frame: (H, W, 3) RGB or (H, W, 4) RGBA uint8 pixels (e.g. np.asarray(PIL image)). Returns the
        model's input (C, H, W) float32: timm's eval resize, centre crop and normalisation, as the
        config's "preprocessing" says, by the library's own vitcc::preprocess."""
        if self.input_shape[0] != 3:
            raise ValueError("%s: preprocess makes RGB input, and this model takes %d channel(s)"
                             % (self.name, self.input_shape[0]))
        f = np.asarray(frame)
        if f.dtype != np.uint8:
            raise TypeError("%s: preprocess takes uint8 pixels, got dtype %s" % (self.name, f.dtype))
        if f.ndim != 3 or f.shape[2] not in (3, 4):
            raise ValueError("%s: preprocess takes a (height, width, 3 or 4) array of RGB(A) pixels, got shape %s%s"
                             % (self.name, tuple(f.shape),
                                " (greyscale: convert it to RGB first)" if f.ndim == 2 else ""))
        return self._lib.preprocess(np.ascontiguousarray(f)).reshape(self.input_shape)

    def __repr__(self):
        return "<vitcc.Model %s (%s, %s): %s -> %s, target %s (%s), %d thread(s)>" % (
            self.name, self.architecture, self.precision, self.input_shape, self.output_shape, self.target,
            self.isa, self.threads)


def load(config, threads=None, target="native", cache=None, compile_command=None, verbose=False):
    """Loads the model vitcc-pack wrote as `config` (NAME.json, with its blob beside it).

    threads: worker threads for each call (default: the CPUs this process may use); results are the
        same bits for any count.
    target: the instruction set to compile for (vitcc-compile --list-targets); default this CPU's.
    cache: the folder of compiled models (default: cache_dir()).
    compile_command: vitcc-compile (default: $VITCC_COMPILE, this build's or install's, the PATH).
    Compiling takes seconds to a minute, once per configuration, target and vitcc build; a note on
    stderr says so."""
    config = os.path.abspath(os.fspath(config))  # never read as an option by vitcc-compile
    cfg, raw = _read_config(config)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = cpus if threads is None else int(threads)
    if threads < 1 or threads > 4 * cpus:
        raise ValueError("threads must be 1 to %d (4 x the %d CPUs this process may use), got %r"
                         % (4 * cpus, cpus, threads))
    if threads > cpus:
        warnings.warn("vitcc: %d threads on %d CPUs: each forward pass waits for threads that share a core "
                      "(slower than %d)" % (threads, cpus, cpus), RuntimeWarning, stacklevel=2)
    blob_path = cfg["blob_path"]
    compile_cmd = _compile_command(compile_command)
    key = hashlib.sha256()
    for part in (cfg["config_hash"], cfg["header_checksum"], cfg["blob_checksum"], target, _tool_key(compile_cmd)):
        key.update(str(part).encode() + b"\0")
    with open(cfg["header_path"], "rb") as f:  # the code itself (configs before header_checksum too)
        key.update(f.read())
    if "native" in target.split(","):  # this CPU: a cache shared between machines must not mix them up
        key.update(b"cpu=%d" % _vitcc.cpu_features())
    root = os.fspath(cache) if cache is not None else cache_dir()
    lib_path = os.path.join(root, "pylib-%s.so" % key.hexdigest()[:16])
    if not os.path.exists(lib_path):
        os.makedirs(root, exist_ok=True)
        sys.stderr.write("vitcc: note: compiling %s for this machine (once per configuration; cache %s)\n"
                         % (cfg["name"], root))
        work = tempfile.mkdtemp(prefix=".pylib-build-", dir=root)
        try:
            cmd = [compile_cmd, config, "-o", work, "--shared", "--target", target]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if verbose:
                sys.stderr.write(r.stdout + r.stderr)
            if r.returncode != 0:
                raise VitccError("%s failed (exit %d): %s" % (" ".join(cmd), r.returncode, r.stderr.strip()))
            _check_library_header(os.path.join(work, "%s.h" % cfg["name"]), cfg)
            os.replace(os.path.join(work, "lib%s.so" % cfg["name"]), lib_path)  # atomic
        finally:
            shutil.rmtree(work, ignore_errors=True)
    try:
        lib = _vitcc.Library(lib_path, cfg["symbol_prefix"], blob_path, int(threads))
    except RuntimeError as e:
        raise VitccError(str(e)) from None
    return Model(cfg, raw, lib)
