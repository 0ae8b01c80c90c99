#!/usr/bin/env python3
"""A small, independent safetensors reader (Python standard library, NumPy when available).

    read_safetensors.py FILE                     print each tensor: name, dtype, shape, first values
    read_safetensors.py --expect-cdgan-test FILE check the file written by the C++ test
                                                 "safetensors: file for the Python reader check"
                                                 (tests/unit/io_test.cpp) value by value

It validates what the format requires: the 8-byte little-endian header length fits in the file,
the header is a JSON object, every tensor has a known dtype, a shape and data_offsets inside the
data buffer whose size equals dtype size x number of elements, and the tensors tile the buffer
without gaps or overlaps. Exit status 0 on success, 1 with a message on stderr otherwise.

NumPy is used to decode the values when it can be imported (Debian's python3-numpy); otherwise the
standard library's struct module does the same work, so any Python 3 runs the check.
"""
import json
import math
import struct
import sys

try:  # NumPy is optional: the check must run with a bare Python too.
    import numpy as np
except ImportError:  # pragma: no cover
    np = None

# dtype -> (element size, struct format character, numpy dtype string)
DTYPES = {
    "F64": (8, "d", "<f8"), "F32": (4, "f", "<f4"), "F16": (2, "e", "<f2"),
    "BF16": (2, None, None),
    "I64": (8, "q", "<i8"), "I32": (4, "i", "<i4"), "I16": (2, "h", "<i2"), "I8": (1, "b", "i1"),
    "U64": (8, "Q", "<u8"), "U32": (4, "I", "<u4"), "U16": (2, "H", "<u2"), "U8": (1, "B", "u1"),
    "BOOL": (1, "?", "?"),
}


class FormatError(Exception):
    pass


def load(path):
    """Return (tensors, metadata); tensors maps name -> (dtype, shape, list of values)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise FormatError(f"{path}: byte offset {len(raw)}: expected an 8-byte header length, "
                          f"found end of file")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise FormatError(f"{path}: byte offset 0: header length {n} runs beyond the file "
                          f"({len(raw)} bytes)")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{path}: byte offset 8: expected a JSON header, found {e}")
    if not isinstance(header, dict):
        raise FormatError(f"{path}: byte offset 8: expected a JSON object as header")
    data = raw[8 + n:]
    metadata = header.pop("__metadata__", {}) or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise FormatError(f"{path}: __metadata__ must map strings to strings")
    tensors = {}
    spans = []
    for name, info in header.items():
        dtype = info.get("dtype")
        shape = info.get("shape")
        offsets = info.get("data_offsets")
        if dtype not in DTYPES:
            raise FormatError(f"{path}: tensor '{name}': unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise FormatError(f"{path}: tensor '{name}': bad shape {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) for o in offsets)):
            raise FormatError(f"{path}: tensor '{name}': bad data_offsets {offsets!r}")
        begin, end = offsets
        if not 0 <= begin <= end <= len(data):
            raise FormatError(f"{path}: tensor '{name}': data_offsets [{begin}, {end}] outside "
                              f"the {len(data)}-byte buffer")
        size, fmt, npt = DTYPES[dtype]
        count = math.prod(shape)
        if count * size != end - begin:
            raise FormatError(f"{path}: tensor '{name}': byte offset {8 + n + begin}: dtype "
                              f"{dtype} and shape {shape} need {count * size} bytes, "
                              f"data_offsets give {end - begin}")
        chunk = data[begin:end]
        if npt is not None and np is not None:
            values = np.frombuffer(chunk, dtype=np.dtype(npt)).reshape(shape)
            flat = values.ravel().tolist()
        elif fmt is not None:
            flat = list(struct.unpack("<" + fmt * count, chunk))
        else:  # BF16: keep the raw 16-bit patterns
            flat = list(struct.unpack("<" + "H" * count, chunk))
        tensors[name] = (dtype, shape, flat)
        spans.append((begin, end, name))
    spans.sort()
    expect = 0
    for begin, end, name in spans:
        if begin != expect:
            raise FormatError(f"{path}: tensor '{name}': starts at buffer offset {begin}, "
                              f"expected {expect} (gap or overlap)")
        expect = end
    if expect != len(data):
        raise FormatError(f"{path}: {len(data) - expect} bytes after the last tensor")
    return tensors, metadata


def expect_cdgan_test(tensors, metadata):
    """The values written by write_python_check_file in tests/unit/io_test.cpp."""
    problems = []

    def check(name, dtype, shape, values):
        if name not in tensors:
            problems.append(f"missing tensor '{name}'")
            return
        got_dtype, got_shape, got = tensors[name]
        if got_dtype != dtype or got_shape != shape or got != values:
            problems.append(f"tensor '{name}': expected {dtype} {shape} {values}, "
                            f"found {got_dtype} {got_shape} {got}")

    check("generator.dense.weight", "F32", [2, 3], [i * 0.5 - 1.0 for i in range(6)])
    check("step", "I64", [2], [1234, -5])
    check("mask", "U8", [4], [0, 1, 254, 255])
    check("scalar", "F64", [], [3.25])
    if len(tensors) != 4:
        problems.append(f"expected 4 tensors, found {sorted(tensors)}")
    if metadata != {"format": "cdgan", "note": "written by io_test.cpp"}:
        problems.append(f"unexpected metadata {metadata}")
    return problems


def main(argv):
    args = argv[1:]
    expect = False
    if args and args[0] == "--expect-cdgan-test":
        expect = True
        args = args[1:]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        tensors, metadata = load(args[0])
    except (OSError, FormatError) as e:
        print(f"read_safetensors.py: {e}", file=sys.stderr)
        return 1
    if expect:
        problems = expect_cdgan_test(tensors, metadata)
        for p in problems:
            print(f"read_safetensors.py: {args[0]}: {p}", file=sys.stderr)
        if problems:
            return 1
        print(f"read_safetensors.py: {args[0]}: all {len(tensors)} tensors and the metadata match "
              f"({'numpy ' + np.__version__ if np is not None else 'struct'} decoding)")
        return 0
    for k, v in sorted(metadata.items()):
        print(f"__metadata__ {k} = {v}")
    for name in sorted(tensors):
        dtype, shape, flat = tensors[name]
        head = ", ".join(str(x) for x in flat[:6]) + (", ..." if len(flat) > 6 else "")
        print(f"{name}: {dtype} {shape} [{head}]")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
