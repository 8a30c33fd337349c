"""Seeded generator of malformed carkinetics inputs (issue 12).

Shared by the campaign (``benchmarks/fuzz/campaign.py``: every case through the command line
in a subprocess, with time and memory limits) and by the in-suite test (``tests/test_fuzz.py``:
the parse-only cases in-process).

A :class:`Case` is a set of files to lay out in a fresh folder, the command-line arguments
that use them (``{d}`` stands for that folder) and what the input must give:

* ``refuse``: the input is wrong and must be refused (exit status != 0, ``Error: ...``
  naming ``names``); exit 0 is a *wrongly accepted* input;
* ``accept``: valid by construction, must run;
* ``either``: a mutation whose validity is not known in advance: refusing it (with the file
  named) and accepting it are both fine; a traceback, hang, memory blow-up or code execution
  never is.

Every mutation starts from a file shipped with the package or its tests, so the campaign follows
the file formats as they change. Nothing here imports carkinetics.
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SENTINEL = "PWNED"  # created in the case folder by every injected payload

# shipped files mutated
MODEL = ROOT / "models" / "multiphasic.toml"
BIG_MODEL = ROOT / "models" / "cart_tall.toml"
TOY_MODEL = ROOT / "tests" / "data" / "sweep" / "toy_model.toml"
DECAY = ROOT / "tests" / "data" / "fit" / "decay.toml"
DOSED = ROOT / "tests" / "data" / "fit" / "dosed.toml"
SC_COHORT = ROOT / "scenarios" / "multiphasic_cohort.toml"
SC_TYPICAL = ROOT / "scenarios" / "multiphasic_typical.toml"
SC_PROTOCOL = ROOT / "scenarios" / "protocol_design.toml"
SC_TOY_SWEEP = ROOT / "tests" / "data" / "sweep" / "toy_sweep.toml"
SC_LINEAR = ROOT / "tests" / "data" / "scenarios" / "linear_events.toml"
CALIBRATION = ROOT / "models" / "calibration" / "cart_ball.toml"
PSET = ROOT / "models" / "calibrated" / "cart_tall" / "cd7_donor.toml"
DATA_LONG = ROOT / "tests" / "data" / "fit" / "long_good.csv"
DATA_NONMEM = ROOT / "tests" / "data" / "fit" / "nonmem_good.csv"


@dataclass
class Case:
    id: str
    category: str
    desc: str
    files: dict  # relative path -> bytes | ("dir",) | ("symlink", target) | ("fifo",) | ("sparse", size)
    argv: list  # after `carkinetics`; "{d}" is the case folder
    expect: str = "either"  # refuse | accept | either
    names: str = ""  # text an error message must contain (a file name); "" = no check
    payload: bool = False  # carries a code-execution payload (sentinel file)
    compiles: bool = False  # may compile a new numba kernel (longer timeout, private kernel cache)
    timeout: float = 0.0  # seconds; 0 = the campaign's default
    hand: bool = False  # hand-written (a finding of issue 12) rather than random
    mutation: str = ""

    @property
    def parse_only(self) -> bool:
        return self.argv[0] in ("check", "@probe") or (self.argv[0] == "calibrate" and "--dry-run" in self.argv)


# ------------------------------------------------------------------------------------------
# a small TOML writer (tomli_w is not a dependency)
# ------------------------------------------------------------------------------------------
_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _qstr(s: str) -> str:
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _key(k) -> str:
    k = str(k)
    return k if _BARE.match(k) else _qstr(k)


def _val(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v:
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _qstr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_val(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_val(x)}" for k, x in v.items()) + " }"
    if isinstance(v, Raw):
        return v.text
    raise TypeError(type(v))


class Raw:
    """A value written verbatim (e.g. an integer literal of 400 digits)."""

    def __init__(self, text):
        self.text = text


def _is_table_array(v) -> bool:
    return isinstance(v, list) and v and all(isinstance(x, dict) for x in v)


def dumps(doc: dict) -> str:
    lines: list[str] = []

    def table(d, prefix):
        for k, v in d.items():
            if not isinstance(v, dict) and not _is_table_array(v):
                lines.append(f"{_key(k)} = {_val(v)}")
        for k, v in d.items():
            path = prefix + [_key(k)]
            if isinstance(v, dict):
                lines.append("")
                lines.append(f"[{'.'.join(path)}]")
                table(v, path)
            elif _is_table_array(v):
                for item in v:
                    lines.append("")
                    lines.append(f"[[{'.'.join(path)}]]")
                    table(item, path)

    table(doc, [])
    return "\n".join(lines).lstrip("\n") + "\n"


def load(path: Path) -> dict:
    import tomllib

    return tomllib.loads(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------
# structural mutations of a parsed document
# ------------------------------------------------------------------------------------------
def leaves(doc, prefix=()):
    """Every (path, value) of the document: tables, arrays and scalars."""
    out = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append((prefix + (k,), v))
            out.extend(leaves(v, prefix + (k,)))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.append((prefix + (i,), v))
            out.extend(leaves(v, prefix + (i,)))
    return out


def _get_parent(doc, path):
    for p in path[:-1]:
        doc = doc[p]
    return doc


def _copy(doc):
    return json.loads(json.dumps(doc, allow_nan=True))


# Tables whose keys are a fixed set: an unknown key there must be refused.
_FIXED = {"model", "scenario", "times", "solver", "plot", "population", "sweep", "calibration", "plots", "covariates"}


def _fixed_schema(path) -> bool:
    """Whether the table at ``path`` only takes known keys."""
    if not path:
        return True  # top-level sections
    last = path[-1]
    if isinstance(last, int):
        return True  # [[events]] entries
    if last in _FIXED and len(path) == 1:
        return True
    if len(path) == 2 and path[0] in ("states", "parameters", "outputs", "endpoints", "outcomes", "arms", "products",
                                       "estimate", "fixed"):
        return True
    if len(path) == 3 and path[:2] == ("population", "covariates"):
        return True
    return False


NAME_KEYS = {("model", "name"), ("scenario", "name"), ("calibration", "name")}
EXPR_HINT = ("odes", "expressions", "outputs", "initial", "expr", "hazard", "when", "expression", "among")


def mutate(doc: dict, rng: random.Random):
    """One random mutation of a parsed TOML document: (new document, description, expectation)."""
    doc = _copy(doc)
    items = [(p, v) for p, v in leaves(doc)]
    p, v = rng.choice(items)
    parent = _get_parent(doc, p)
    key = p[-1]
    where = ".".join(map(str, p))
    numeric = isinstance(v, (int, float)) and not isinstance(v, bool)
    is_str = isinstance(v, str)
    ops = ["type_list", "type_table", "type_bool", "delete", "empty_str", "long_str", "unknown_key", "type_str"]
    if numeric:
        ops += ["nan", "nan", "inf", "neginf", "huge_float", "huge_int", "big_int", "tiny", "negative", "zero"] * 2
    if is_str:
        ops += ["type_num", "ctrl", "ctrl", "long_str", "deep_expr", "long_expr", "payload_name", "homoglyph",
                "nonexistent_name"] * 2
    op = rng.choice(ops)
    expect = "either"
    new = v
    if op == "nan":
        new, expect = float("nan"), "refuse"
    elif op == "inf":
        new = float("inf")
    elif op == "neginf":
        new = float("-inf")
    elif op == "huge_float":
        new = rng.choice([1e308, -1e308, 1.7e308])
    elif op == "huge_int":
        new = rng.choice([10**18, 10**19, 10**30, -(10**30)])
    elif op == "big_int":
        new = Raw("1" + "0" * rng.choice([309, 400, 4000]))  # integer literals above 1e308
    elif op == "tiny":
        new = rng.choice([5e-324, 1e-300, 1e-9])
    elif op == "negative":
        new = -abs(v) - 1 if v == 0 else -v
    elif op == "zero":
        new = 0 if isinstance(v, int) else 0.0
    elif op == "type_str":
        new = str(v) if not isinstance(v, (dict, list)) else "text"
    elif op == "type_num":
        new = rng.choice([1, 0, -1, 3.5])
    elif op == "type_list":
        new = [v] if not isinstance(v, list) else v + [None.__class__.__name__]
    elif op == "type_table":
        new = {"value": v} if not isinstance(v, dict) else {}
    elif op == "type_bool":
        new = rng.choice([True, False])
    elif op == "empty_str":
        new = ""
    elif op == "long_str":
        new = "x" * rng.choice([10_000, 100_000, 1_000_000])
    elif op == "ctrl":
        c = rng.choice(["\n", "\r", "\u2028", "\u2029", "\x00", "\x1b[2J", "\x0b", "\x0c", "\x85", "\t", "\x7f"])
        new = v + c + "x"
        if p in NAME_KEYS and c != "\t":
            expect = "refuse"
    elif op == "deep_expr":
        n = rng.choice([200, 1000, 10_000, 100_000])
        new = "(" * n + "1" + ")" * n
    elif op == "long_expr":
        n = rng.choice([1000, 10_000, 100_000])
        new = "+".join(["1.5"] * n)
    elif op == "payload_name":
        new = f"{v}\nimport os; os.system('touch {SENTINEL}')\n#"
        expect = "refuse" if p in NAME_KEYS else "either"
    elif op == "homoglyph":
        new = v.replace("e", "\u0435").replace("a", "\u0430")  # Cyrillic e, a
    elif op == "nonexistent_name":
        new = "zz_no_such_name"
    if op == "delete":
        if isinstance(parent, list):
            parent.pop(key)
        else:
            del parent[key]
        return doc, f"delete {where}", "either", op
    if op == "unknown_key":
        target = v if isinstance(v, dict) else parent
        tpath = p if isinstance(v, dict) else p[:-1]
        if not isinstance(target, dict):
            return mutate_fallback(doc, where)
        target["zz_unknown_key"] = 1
        return doc, f"unknown key zz_unknown_key in [{'.'.join(map(str, tpath))}]", (
            "refuse" if _fixed_schema(tpath) else "either"), op
    parent[key] = new
    shown = repr(new) if not isinstance(new, (str, Raw)) or len(str(getattr(new, "text", new))) < 60 else (
        f"<{len(getattr(new, 'text', new)):,} characters>")
    return doc, f"{op}: {where} = {shown}", expect, op


def mutate_fallback(doc, where):
    doc["zz_unknown_section"] = {"a": 1}
    return doc, "unknown section [zz_unknown_section]", "refuse", "unknown_key"


# ------------------------------------------------------------------------------------------
# byte-level mutations of a file
# ------------------------------------------------------------------------------------------
def text_mutations(text: str, rng: random.Random, csv=False):
    """(bytes, description, expectation, op) of encoding / syntax mutations of ``text``."""
    b = text.encode("utf-8")
    cut = rng.randrange(1, max(2, len(b) - 1))
    out = [
        (b"\xff\xfe" + text.encode("utf-16-le"), "UTF-16 with BOM", "refuse", "utf16"),
        (text.replace("Stein", "St\xe9in").replace("id,", "\xefd,").encode("latin-1", "replace") + b"\n# caf\xe9\n",
         "latin-1 bytes", "refuse", "latin1"),
        (b[:cut] + b"\xc3\x28" + b[cut:], "invalid UTF-8 sequence in the middle", "refuse", "bad_utf8"),
        (b"\xef\xbb\xbf" + b, "UTF-8 byte-order mark", "accept", "bom"),
        (b.replace(b"\n", b"\r\n"), "CRLF line ends", "accept", "crlf"),
        (b[:cut], f"truncated at byte {cut}", "either", "truncate"),
        (b[:cut] + b"\x00" + b[cut:], "NUL byte", "refuse" if not csv else "either", "nul"),
        (b"", "empty file", "refuse", "empty"),
        (bytes(rng.randrange(256) for _ in range(4096)), "4 KiB of random bytes", "refuse", "garbage"),
        (b + b"\n#" + b"c" * 2_000_000 + b"\n", "2 MB comment line", "either", "big_comment"),
    ]
    if not csv:
        out.append((b + b"\n" + b.split(b"\n")[0] + b"\n" if b.startswith(b"[") else b + b"\n[model]\n[model]\n",
                    "duplicated table header", "refuse", "dup_table"))
        lines = b.split(b"\n")
        k = next(i for i, ln in enumerate(lines) if b"=" in ln and not ln.lstrip().startswith(b"#"))
        lines[k] = lines[k].replace(b"=", b":", 1)
        out.append((b"\n".join(lines), "':' for '=' on the first key line", "refuse", "syntax"))
        out.append((b"[" * 100_000, "100,000 opening brackets", "refuse", "brackets"))
        out.append((b"a = " + b"[" * 100_000 + b"]" * 100_000 + b"\n", "array nested 100,000 deep", "refuse",
                    "deep_array"))
    return out


# ------------------------------------------------------------------------------------------
# expression whitelist escapes
# ------------------------------------------------------------------------------------------
S = SENTINEL
ESCAPES = [
    f"__import__('os').system('touch {S}')",
    f"__import__(\"os\").system(\"touch {S}\")",
    f"exec(\"open('{S}','w')\")",
    f"eval(\"open('{S}','w')\")",
    f"open('{S}', 'w')",
    "compile('1', 'x', 'eval')",
    "globals()",
    "locals()",
    "vars()",
    "dir()",
    "breakpoint()",
    "input()",
    "getattr(alpha, 'real')",
    "setattr(alpha, 'x', 1)",
    "alpha.real",
    "alpha.__class__",
    "(1).__class__.__bases__[0].__subclasses__()",
    "().__class__.__mro__[1].__subclasses__()",
    "exp.__globals__",
    "exp.__globals__['__builtins__']",
    "log.__self__",
    "abs.__call__(1)",
    "__builtins__",
    "__builtins__.open",
    "__loader__",
    "__spec__",
    "__name__",
    "__file__",
    "__debug__",
    "__class__",
    "_",
    "__",
    "lambda: 0",
    "(lambda x: x)(1)",
    f"(lambda: __import__('os').system('touch {S}'))()",
    "[x for x in (1, 2)]",
    "{x for x in (1, 2)}",
    "{x: 1 for x in (1, 2)}",
    "sum(x for x in (1, 2))",
    "[1, 2]",
    "(1, 2)",
    "{1, 2}",
    "{1: 2}",
    "[alpha][0]",
    "alpha[0]",
    "alpha[0:1]",
    "alpha[...]",
    "f'{alpha}'",
    f"f'{{__import__(\"os\").system(\"touch {S}\")}}'",
    "'abc'",
    "b'abc'",
    "u'abc'",
    "r'abc'",
    "'a' 'b'",
    "(x := 1)",
    "(alpha := 2) * alpha",
    "alpha if (beta := 1) else 0",
    "*alpha",
    "max(*[1, 2])",
    "max(**{})",
    "max(1, x=2)",
    "exp(x=1)",
    "await alpha",
    "(yield)",
    "(yield from alpha)",
    "alpha @ beta",
    "alpha | beta",
    "alpha & beta",
    "alpha ^ beta",
    "~alpha",
    "alpha << 2",
    "alpha >> 2",
    "alpha % 2",
    "alpha // 2",
    "alpha is beta",
    "alpha is not beta",
    "alpha in (1, 2)",
    "alpha not in (1, 2)",
    "None",
    "True",
    "False",
    "...",
    "Ellipsis",
    "NotImplemented",
    "1j",
    "1 + 2j",
    "0x10",
    "0o17",
    "0b101",
    "1_000",
    "1e999",
    "-1e999",
    "nan",
    "inf",
    "float('nan')",
    "float('inf')",
    "int('7')",
    "str(1)",
    "type(1)",
    "object()",
    "print(1)",
    "id(1)",
    "hash(1)",
    "import os",
    "from os import system",
    f"1; __import__('os').system('touch {S}')",
    f"1\n__import__('os').system('touch {S}')",
    f"1 # \n__import__('os').system('touch {S}')",
    f"1\r__import__('os').system('touch {S}')",
    f"1\u2028__import__('os').system('touch {S}')",
    "alpha = 1",
    "alpha += 1",
    "del alpha",
    "assert alpha",
    "pass",
    "if alpha: 1",
    "\\\n1",
    "__import__",
    "\uff45\uff58\uff50(1)",  # fullwidth 'exp': NFKC-normalised by Python's parser
    "\u0435xp(1)",  # Cyrillic 'e'
    "\U0001d41e\U0001d431\U0001d429(1)",  # mathematical bold 'exp'
    "\u2110mport",  # script capital I
    "\u210c",  # black-letter H: NFKC 'H'
    "\u00aa",  # feminine ordinal: NFKC 'a'
    "alph\u0430",  # Cyrillic a
    "\ufb01le",  # ligature fi: NFKC 'file'
    "\U0001d41a\U0001d425\U0001d429\U0001d421\U0001d41a",  # bold 'alpha' (a parameter name after NFKC)
    "\u00b9",  # superscript one (not a digit in Python's grammar)
    "\u0661",  # Arabic-indic digit one
    "where(alpha, __import__('os'), 1)",
    "max(alpha, *beta)",
    "exp()",
    "exp(1, 2)",
    "where(1, 2)",
    "hill(1, 2, 3, 4)",
    "9 ** 9 ** 9 ** 9",
    "10 ** 10 ** 10",
    "2 ** 100000",
    "(" * 100_000 + "1" + ")" * 100_000,
    "-" * 100_000 + "1",
    "not " * 50_000 + "1",
    "+".join(["alpha"] * 200_000),
    "1 if " * 20_000 + "1" + " else 1" * 20_000,
    "exp(" * 5000 + "1" + ")" * 5000,
    "\x00",
    "",
    "   ",
    "# just a comment",
]
# Expression fields of the tiny multiphasic model (and its scenario) that take the payloads.
ESCAPE_SITES = [
    ("model", ("expressions", "expansion_rate")),
    ("model", ("odes", "persisting")),
    ("model", ("outputs", "transgene", "expression")),
    ("model", ("states", "expanding", "initial")),
    ("scenario", ("population", "parameters", "cmax")),
    ("scenario", ("endpoints", "level_d365", "day")),
    ("scenario", ("events", 0, "when")),
    ("scenario", ("events", 0, "add", "expanding")),
]


# ------------------------------------------------------------------------------------------
# helpers to build cases
# ------------------------------------------------------------------------------------------
def _abs_scenario(doc: dict, base: Path) -> dict:
    """Make the model / parameter_set paths of a scenario absolute (the copy lives elsewhere): its own,
    its arms' and its sweep options'."""
    head = doc.get("scenario", {})
    for k in ("model", "parameter_set"):
        v = head.get(k)
        if isinstance(v, str):
            head[k] = str((base / v).resolve())
        elif isinstance(v, list):
            head[k] = [str((base / x).resolve()) for x in v]
    tables = list((doc.get("arms") or {}).values())
    for axis in ((doc.get("sweep") or {}).get("axes") or {}).values():
        if isinstance(axis, dict):
            tables += list(axis.values())
    for t in tables:
        if isinstance(t, dict) and isinstance(t.get("parameter_set"), str):
            t["parameter_set"] = str((base / t["parameter_set"]).resolve())
    return doc


def _abs_calibration(doc: dict, base: Path, d_out="out") -> dict:
    head = doc["calibration"]
    head["model"] = str((base / head["model"]).resolve())
    head["output"] = d_out
    if "reference" in head:
        head["reference"] = str((base / head["reference"]).resolve())
    for spec in doc.get("products", {}).values():
        spec["scenarios"] = [str((base / s).resolve()) for s in spec["scenarios"]]
    return doc


def _b(text: str) -> bytes:
    return text.encode("utf-8")


def _cohort_with(model_file="model.toml", **over):
    """The multiphasic cohort scenario (as a dict) using the case folder's model file."""
    sc = _abs_scenario(load(SC_COHORT), SC_COHORT.parent)
    sc["scenario"]["model"] = model_file
    sc.update(over)
    return sc


def _typical_with(model_file="model.toml"):
    sc = _abs_scenario(load(SC_TYPICAL), SC_TYPICAL.parent)
    sc["scenario"]["model"] = model_file
    sc["scenario"].pop("targets", None)
    return sc


# ------------------------------------------------------------------------------------------
# categories
# ------------------------------------------------------------------------------------------
def model_cases(rng, n_random):
    cases = []
    base = load(MODEL)
    big = load(BIG_MODEL)
    for i in range(n_random):
        src, nm = (big, "cart_tall") if i % 8 == 7 else (base, "multiphasic")
        doc, desc, expect, op = mutate(src, rng)
        cases.append(Case(f"model-r{i:03d}", "model", f"{nm}: {desc}", {"model.toml": _b(dumps(doc))},
                          ["check", "{d}/model.toml"], expect, "model.toml", mutation=op))
    text = MODEL.read_text(encoding="utf-8")
    for j, (data, desc, expect, op) in enumerate(text_mutations(text, rng)):
        cases.append(Case(f"model-t{j:02d}", "model", f"multiphasic: {desc}", {"model.toml": data},
                          ["check", "{d}/model.toml"], expect, "model.toml", mutation=op))
    return cases


def _model_variant(edit):
    doc = load(MODEL)
    edit(doc)
    return _b(dumps(doc))


def hand_model_cases():
    """The model-file findings of issue 12, one case each (plus variants)."""
    C = []

    def add(cid, desc, files, argv, expect="refuse", names="model.toml", **kw):
        C.append(Case(f"model-h-{cid}", "model", desc, files, argv, expect, names, hand=True, **kw))

    def run_argv():
        return ["run", "{d}/scenario.toml", "--n", "5", "-o", "{d}/out"]

    sc = _b(dumps(_cohort_with()))
    for tag, brk in [("nl", "\n"), ("cr", "\r"), ("crlf", "\r\n"), ("u2028", "\u2028"), ("u2029", "\u2029"),
                     ("vt", "\x0b"), ("ff", "\x0c"), ("fs", "\x1c"), ("nel", "\x85")]:
        name = f"tiny{brk}import os; os.system('touch {SENTINEL}'){brk}#"
        add(f"name-inject-{tag}", f"[model] name with {tag!s} line break and an os.system payload, then `run`",
            {"model.toml": _model_variant(lambda d: d["model"].__setitem__("name", name)), "scenario.toml": sc},
            run_argv(), payload=True, compiles=True)
    # the model's *file name* as the carrier (no [model] name: the name defaults to the file stem)
    for tag, brk in [("nl", "\n"), ("cr", "\r"), ("u2028", "\u2028")]:
        fname = f"m{brk}import os; os.system('touch {SENTINEL}'){brk}#.toml"
        mdoc = load(MODEL)
        del mdoc["model"]["name"]
        add(f"filename-inject-{tag}", f"model file name with {tag} and a payload, no [model] name, then `run`",
            {fname: _b(dumps(mdoc)), "scenario.toml": _b(dumps(_cohort_with(fname)))}, run_argv(), expect="either",
            names="", payload=True, compiles=True)
        add(f"filename-inject-named-{tag}", f"model file name with {tag} and a payload (valid [model] name), `run`",
            {fname: MODEL.read_bytes(), "scenario.toml": _b(dumps(_cohort_with(fname)))}, run_argv(),
            expect="either", names="", payload=True, compiles=True)
    # names with payloads as TOML quoted keys
    for what in ("states", "parameters", "expressions", "outputs"):
        def edit(d, what=what):
            evil = f"x\nimport os; os.system('touch {SENTINEL}')\n#"
            tbl = d[what]
            tbl[evil] = tbl.pop(next(iter(tbl)))
        add(f"key-inject-{what}", f"first {what} name replaced by a quoted key with a payload, then `run`",
            {"model.toml": _model_variant(edit), "scenario.toml": sc}, run_argv(), payload=True, compiles=True)
    # Jacobian locals: expression 'a' w.r.t. state 'b_c' and expression 'a_b' w.r.t. state 'c' both were d_a_b_c
    coll = """[model]
name = "jac_collision"
[states.b_c]
initial = 1.0
unit = "cells"
description = "first pool"
[states.c]
initial = 2.0
unit = "cells"
description = "second pool"
[parameters.k]
value = 0.3
unit = "1/day"
description = "rate"
source = "test value"
[expressions]
a = "b_c * b_c"
a_b = "c * 3"
[odes]
b_c = "-k * a"
c = "-k * a_b"
[outputs.total]
expression = "b_c + c"
unit = "cells"
description = "both pools"
"""
    solver = {"solver": {"method": "rodas4"}}
    coll_sc = _typical_with()
    coll_sc.update(solver)
    coll_sc["times"] = {"end": 10, "step": 1}
    coll_sc.pop("plot", None)
    add("jacobian-collision", "Jacobian locals of (a, b_c) and (a_b, c) (formerly both d_a_b_c), rodas4 run",
        {"model.toml": _b(coll), "scenario.toml": _b(dumps(coll_sc))},
        ["run", "{d}/scenario.toml", "-o", "{d}/out"], expect="accept", compiles=True)
    ref = coll.replace("a_b", "q").replace('name = "jac_collision"', 'name = "jac_collision_ref"')
    add("jacobian-collision-ref", "the same model with non-colliding names (reference for the one above)",
        {"model.toml": _b(ref), "scenario.toml": _b(dumps(coll_sc))},
        ["run", "{d}/scenario.toml", "-o", "{d}/out"], expect="accept", compiles=True)
    # unicode names equal after NFKC (Python identifiers are NFKC-normalised)
    for a, b in [("H", "\u210c"), ("a", "\u00aa"), ("fi", "\ufb01"), ("alpha", "\U0001d41alpha")]:
        def edit(d, a=a, b=b):
            d["parameters"][a] = dict(d["parameters"]["alpha"])
            d["parameters"][b] = dict(d["parameters"]["alpha"])
        add(f"nfkc-{a}", f"parameters {a!r} and {b!r} (equal after NFKC normalisation)",
            {"model.toml": _model_variant(edit)}, ["check", "{d}/model.toml"])
    # non-ASCII identifier
    add("nonascii-name", "a parameter named 'β' (non-ASCII)",
        {"model.toml": _model_variant(lambda d: d["parameters"].__setitem__("\u03b2", dict(d["parameters"]["beta"])))},
        ["check", "{d}/model.toml"], expect="either")
    # directory, special files
    add("dir", "model path is a folder (`check` and a scenario naming it)",
        {"model.toml": ("dir",)}, ["check", "{d}/model.toml"])
    add("dir-scenario", "scenario whose model is a folder",
        {"model.toml": ("dir",), "scenario.toml": sc}, ["check", "{d}/scenario.toml"])
    add("dev-zero", "scenario with model = \"/dev/zero\"",
        {"scenario.toml": _b(dumps(_cohort_with("/dev/zero")))}, ["check", "{d}/scenario.toml"], names="/dev/zero")
    add("dev-zero-run", "scenario with model = \"/dev/zero\", `run`",
        {"scenario.toml": _b(dumps(_cohort_with("/dev/zero")))}, run_argv(), names="/dev/zero")
    add("symlink-dev-zero", "model.toml a symlink to /dev/zero", {"model.toml": ("symlink", "/dev/zero")},
        ["check", "{d}/model.toml"])
    add("symlink-dev-urandom", "model.toml a symlink to /dev/urandom", {"model.toml": ("symlink", "/dev/urandom")},
        ["check", "{d}/model.toml"])
    add("fifo", "model.toml a named pipe (nobody writes)", {"model.toml": ("fifo",)}, ["check", "{d}/model.toml"])
    add("symlink-loop", "model.toml a symlink to itself", {"model.toml": ("symlink", "model.toml")},
        ["check", "{d}/model.toml"])
    add("sparse-100M", "a 100 MB model file (sparse, zeros)", {"model.toml": ("sparse", 100 * 2**20)},
        ["check", "{d}/model.toml"])
    add("missing", "model file that does not exist", {}, ["check", "{d}/model.toml"])
    add("bare-name-unknown", "scenario with model = \"no_such_model\" (bare name)",
        {"scenario.toml": _b(dumps(_cohort_with("no_such_model")))}, ["check", "{d}/scenario.toml"],
        names="no_such_model")
    for tag in ("run", "sweep"):
        argv = {"run": run_argv(),
                "sweep": ["sweep", "{d}/scenario.toml", "--n", "5", "-o", "{d}/out", "--no-plots",
                          "--no-progress"]}[tag]
        add(f"latin1-model-{tag}", f"non-UTF-8 (latin-1) model file through `{tag}`",
            {"model.toml": MODEL.read_bytes() + b"\n# caf\xe9\n", "scenario.toml": sc}, argv)
    cal = _abs_calibration(load(CALIBRATION), CALIBRATION.parent)
    cal["calibration"]["model"] = "model.toml"
    add("latin1-model-calibrate", "non-UTF-8 (latin-1) model file through `calibrate --dry-run`",
        {"model.toml": (ROOT / "models" / "cart_ball.toml").read_bytes() + b"\n# caf\xe9\n",
         "calibration.toml": _b(dumps(cal))}, ["calibrate", "{d}/calibration.toml", "--dry-run"])
    # numbers
    add("int-above-1e308", "parameter value an integer literal of 400 digits",
        {"model.toml": _model_variant(lambda d: d["parameters"]["alpha"].__setitem__("value", Raw("1" + "0" * 400)))},
        ["check", "{d}/model.toml"])
    add("int-above-1e308-bounds", "bounds with an integer literal of 400 digits",
        {"model.toml": _model_variant(lambda d: d["parameters"]["alpha"].__setitem__("bounds",
                                                                                     [0, Raw("9" * 400)]))},
        ["check", "{d}/model.toml"])
    add("initial-nan", "initial = nan", {"model.toml": _model_variant(
        lambda d: d["states"]["persisting"].__setitem__("initial", float("nan")))}, ["check", "{d}/model.toml"])
    add("initial-nan-str", "initial = \"nan\"", {"model.toml": _model_variant(
        lambda d: d["states"]["persisting"].__setitem__("initial", "nan"))}, ["check", "{d}/model.toml"])
    add("initial-neg-str", "a negative initial value written as a string, initial = \"-5\"",
        {"model.toml": _model_variant(lambda d: d["states"]["persisting"].__setitem__("initial", "-5"))},
        ["check", "{d}/model.toml"])
    add("initial-neg", "initial = -5", {"model.toml": _model_variant(
        lambda d: d["states"]["persisting"].__setitem__("initial", -5.0))}, ["check", "{d}/model.toml"])
    add("value-inf", "parameter value = inf", {"model.toml": _model_variant(
        lambda d: d["parameters"]["alpha"].__setitem__("value", float("inf")))}, ["check", "{d}/model.toml"])
    add("breakpoints-t", "breakpoints = [\"t\"]", {"model.toml": _model_variant(
        lambda d: d["model"].__setitem__("breakpoints", ["t"]))}, ["check", "{d}/model.toml"])
    add("breakpoints-nan", "breakpoints = [nan]", {"model.toml": _model_variant(
        lambda d: d["model"].__setitem__("breakpoints", [float("nan")]))}, ["check", "{d}/model.toml"])
    add("breakpoints-nan-expr", "breakpoints = [\"tmax * nan\"]-like: [\"log(-1)\"]", {"model.toml": _model_variant(
        lambda d: d["model"].__setitem__("breakpoints", ["log(0 - tmax)"]))}, ["check", "{d}/model.toml"])
    add("name-int", "[model] name = 5", {"model.toml": _model_variant(lambda d: d["model"].__setitem__("name", 5))},
        ["check", "{d}/model.toml"])
    add("name-10000", "a 10,000-character model name", {"model.toml": _model_variant(
        lambda d: d["model"].__setitem__("name", "n" * 10_000))}, ["check", "{d}/model.toml"])
    add("param-name-10000", "a 10,000-character parameter name", {"model.toml": _model_variant(
        lambda d: d["parameters"].__setitem__("p" * 10_000, dict(d["parameters"]["alpha"])))},
        ["check", "{d}/model.toml"], expect="either")
    add("expr-long", "an expression of 200,000 terms", {"model.toml": _model_variant(
        lambda d: d["expressions"].__setitem__("transfer_rate", "+".join(["fb"] * 200_000)))},
        ["check", "{d}/model.toml"], expect="either")
    add("expr-deep", "an expression nested 100,000 parentheses deep", {"model.toml": _model_variant(
        lambda d: d["expressions"].__setitem__("transfer_rate", "(" * 100_000 + "fb" + ")" * 100_000))},
        ["check", "{d}/model.toml"], expect="either")
    add("expr-deep-unary", "an expression of 100,000 unary minus", {"model.toml": _model_variant(
        lambda d: d["expressions"].__setitem__("transfer_rate", "-" * 100_000 + "fb"))},
        ["check", "{d}/model.toml"], expect="either")
    add("expr-deep-run", "an expression nested 300 parentheses deep, `run` (codegen and Jacobian)",
        {"model.toml": _model_variant(lambda d: d["expressions"].__setitem__(
            "transfer_rate", "(" * 300 + "fb * (alpha - beta)" + ")" * 300)), "scenario.toml": sc}, run_argv(),
        expect="either", compiles=True)
    return C


def scenario_cases(rng, n_random):
    cases = []
    bases = [("multiphasic_cohort", _abs_scenario(load(SC_COHORT), SC_COHORT.parent)),
             ("multiphasic_typical", _abs_scenario(load(SC_TYPICAL), SC_TYPICAL.parent)),
             ("linear_events", _abs_scenario(load(SC_LINEAR), SC_LINEAR.parent)),
             ("protocol_design", _abs_scenario(load(SC_PROTOCOL), SC_PROTOCOL.parent))]
    for i in range(n_random):
        nm, src = bases[i % len(bases)]
        doc, desc, expect, op = mutate(src, rng)
        cases.append(Case(f"scenario-r{i:03d}", "scenario", f"{nm}: {desc}", {"scenario.toml": _b(dumps(doc))},
                          ["check", "{d}/scenario.toml"], expect, "scenario.toml", mutation=op))
    text = dumps(_abs_scenario(load(SC_COHORT), SC_COHORT.parent))
    for j, (data, desc, expect, op) in enumerate(text_mutations(text, rng)):
        cases.append(Case(f"scenario-t{j:02d}", "scenario", f"multiphasic_cohort: {desc}", {"scenario.toml": data},
                          ["check", "{d}/scenario.toml"], expect, "scenario.toml", mutation=op))
    return cases


def hand_scenario_cases():
    C = []

    def add(cid, desc, doc, expect="refuse", argv=None, **kw):
        C.append(Case(f"scenario-h-{cid}", "scenario", desc, {"scenario.toml": _b(dumps(doc))},
                      argv or ["check", "{d}/scenario.toml"], expect, "scenario.toml", hand=True, **kw))

    def cohort():
        return _abs_scenario(load(SC_COHORT), SC_COHORT.parent)

    def typical():
        return _abs_scenario(load(SC_TYPICAL), SC_TYPICAL.parent)

    def lin():
        return _abs_scenario(load(SC_LINEAR), SC_LINEAR.parent)

    d = lin(); d["events"][0]["set"] = {"b": -1e6}; d["events"][0].pop("add")
    add("event-set-neg", "an event that sets a state to -1e6", d)
    d = lin(); d["events"][0]["add"] = {"b": -1e6}
    add("event-add-neg", "an event that adds -1e6 to a state (either: the engine may floor at 0)", d, "either")
    d = lin(); d["events"][0]["multiply"] = {"b": -1.0}; d["events"][0].pop("add")
    add("event-multiply-neg", "an event that multiplies a state by -1", d)
    d = lin(); d["events"][1]["set_parameter"] = {"growth_a": 1e9}
    add("set-parameter-out-of-bounds", "set_parameter far outside the parameter's bounds (1e9)", d)
    d = lin(); d["events"][0]["time"] = 1e308
    add("event-time-1e308", "event time = 1e308", d)
    d = lin(); d["events"][0]["time"] = float("nan")
    add("event-time-nan", "event time = nan", d)
    d = cohort(); d["arms"] = {"a": {"share": 1.0, "parameters": {"alpha": 100.0}}}
    add("arm-param-clipped", "arm parameter alpha = 100, above its bounds [0.005, 5] (was clipped silently)", d)
    d = cohort(); d["population"]["parameters"]["alpha"] = "alpha * 1000"
    add("population-param-out-of-bounds", "population parameter alpha * 1000 (typical far above bounds)", d, "either")
    d = typical(); d["scenario"]["targets"] = ["no_such_target"]
    add("unknown-target", "[scenario] targets = [\"no_such_target\"]", d)
    d = typical(); d["scenario"]["name"] = 5
    add("name-int", "[scenario] name = 5", d)
    d = typical(); d["scenario"]["name"] = "n" * 10_000
    add("name-10000", "a 10,000-character scenario name", d)
    d = typical(); d["scenario"]["name"] = f"s\nimport os; os.system('touch {SENTINEL}')\n#"
    add("name-inject", "scenario name with a line break and payload", d)
    d = typical(); d["plot"]["log_scale"] = "no"
    add("log-scale-no", "log_scale = \"no\"", d)
    d = typical(); d["plot"]["log_scale"] = 0
    add("log-scale-0", "log_scale = 0", d)
    d = typical(); d["times"]["step"] = 1e-9
    add("step-1e-9", "[times] step = 1e-9 over 730 days (7.3e11 output times)", d)
    d = typical(); d["times"]["step"] = 5e-324
    add("step-denormal", "[times] step = 5e-324", d)
    d = typical(); d["times"]["end"] = 1e308
    add("end-1e308", "[times] end = 1e308", d)
    d = typical(); d["times"] = {"values": [float(i) for i in range(2_000_000)]}
    add("values-2M", "[times] values with 2,000,000 entries", d, "either")
    d = typical(); d["times"]["end"] = Raw("1" + "0" * 400)
    add("end-int-1e400", "[times] end = an integer of 400 digits", d)
    d = lin(); d["events"][0]["time"] = Raw("1" + "0" * 309)
    add("event-time-int-1e309", "[[events]] time = an integer of 310 digits", d)
    d = typical(); d["times"]["step"] = 10**30
    add("step-int-1e30", "[times] step = 10**30 written as an integer", d)
    d = typical(); d["solver"] = {"max_steps": 10**30}
    add("max-steps-1e30", "[solver] max_steps = 10**30", d)
    d = typical(); d["solver"] = {"max_steps": Raw("1" + "0" * 400)}
    add("max-steps-1e400", "[solver] max_steps = an integer of 400 digits", d)
    d = typical(); d["solver"] = {"rtol": float("nan")}
    add("rtol-nan", "[solver] rtol = nan", d)
    d = typical(); d["solver"] = {"rtol": 0.0}
    add("rtol-0", "[solver] rtol = 0", d)
    d = cohort(); d["population"]["size"] = 10**12
    add("population-1e12", "[population] size = 10**12 with `run --n 5` (either: --n wins)", d, "either",
        argv=["run", "{d}/scenario.toml", "--n", "5", "-o", "{d}/out"])
    d = cohort(); d["population"]["size"] = 10**12
    add("population-1e12-norun", "[population] size = 10**12, `run` without --n", d, "either",
        argv=["run", "{d}/scenario.toml", "-o", "{d}/out"])
    d = cohort(); d["scenario"]["model"] = str(ROOT)
    add("model-is-dir", "[scenario] model = the repository folder", d)
    d = cohort(); d["scenario"]["model"] = "x" * 5000 + ".toml"
    add("model-path-5000", "[scenario] model = a 5,000-character path", d)
    d = cohort(); d["scenario"]["model"] = "m\x00.toml"
    add("model-path-nul", "[scenario] model = a path with a NUL byte", d)
    d = cohort(); d["endpoints"]["level_d365"]["day"] = 1e308
    add("endpoint-day-1e308", "endpoint day = 1e308", d)
    d = cohort(); d["population"]["covariates"]["dose_per_kg"]["lower"] = float("nan")
    add("covariate-nan", "covariate lower = nan", d)
    d = cohort(); d["population"]["covariates"]["dose_per_kg"]["upper"] = 1e308
    d["population"]["covariates"]["dose_per_kg"]["lower"] = 1e-308
    add("covariate-extreme", "log-uniform covariate over [1e-308, 1e308], `run --n 5`", d, "either",
        argv=["run", "{d}/scenario.toml", "--n", "5", "-o", "{d}/out"])
    d = cohort(); d["plot"]["outputs"] = ["transgene"] * 100_000
    add("plot-outputs-100k", "plot outputs listing one output 100,000 times", d, "either")
    return C


def sweep_cases(rng, n_random):
    cases = []
    base = _abs_scenario(load(SC_TOY_SWEEP), SC_TOY_SWEEP.parent)
    proto = _abs_scenario(load(SC_PROTOCOL), SC_PROTOCOL.parent)
    for i in range(n_random):
        nm, src = ("protocol_design", proto) if i % 3 == 2 else ("toy_sweep", base)
        # mutate only inside [sweep]
        sub = {"sweep": src["sweep"]}
        doc, desc, expect, op = mutate(sub, rng)
        full = _copy(src)
        full["sweep"] = doc.get("sweep", {})
        if "sweep" not in doc:
            full.pop("sweep")
        for k, v in doc.items():
            if k != "sweep":
                full[k] = v
        cases.append(Case(f"sweep-r{i:03d}", "sweep", f"{nm}: {desc}", {"scenario.toml": _b(dumps(full))},
                          ["check", "{d}/scenario.toml"], expect, "scenario.toml", mutation=op))
    return cases


def hand_sweep_cases():
    C = []
    e2e = ["sweep", "{d}/scenario.toml", "--n", "5", "-o", "{d}/out", "--no-plots", "--no-progress"]

    def add(cid, desc, doc, expect="refuse", argv=None, **kw):
        C.append(Case(f"sweep-h-{cid}", "sweep", desc, {"scenario.toml": _b(dumps(doc))},
                      argv or ["check", "{d}/scenario.toml"], expect, "scenario.toml", hand=True, **kw))

    def toy():
        return _abs_scenario(load(SC_TOY_SWEEP), SC_TOY_SWEEP.parent)

    d = toy()
    d["sweep"]["axes"] = {"dose_per_kg": [1e5 + i for i in range(600)],
                          "transplant_day": [30 + i * 0.01 for i in range(600)],
                          "arm": ["previous_donor", "new_donor"]}
    d["sweep"]["axes"]["expansion"] = [1.0 + i * 1e-4 for i in range(300)]
    add("grid-216M-points", "a 600 x 600 x 2 x 300 = 216-million-point grid, two points asked for (--points 0,1)",
        d, "either", argv=e2e + ["--points", "0,1"])
    add("grid-216M-check", "the 216-million-point grid, `check`", d, "either")
    d = toy(); d["sweep"]["axes"]["dose_per_kg"] = [5e5, float("nan")]
    add("axis-nan", "an axis value nan", d)
    d = toy(); d["sweep"]["axes"]["dose_per_kg"] = [5e5, 5e5]
    add("axis-dup", "an axis with a repeated value", d)
    d = toy(); d["sweep"]["axes"]["dose_per_kg"] = []
    add("axis-empty", "an empty axis", d)
    d = toy(); d["sweep"]["axes"]["arm"] = ["previous_donor", "no_such_arm"]
    add("axis-unknown-arm", "an unknown arm on the arm axis", d)
    d = toy(); d["sweep"]["axes"]["zz_unknown"] = [1, 2]
    add("axis-unknown", "an axis naming nothing", d)
    d = toy(); d["sweep"]["n"] = 10**30
    add("n-1e30", "[sweep] n = 10**30 with `sweep --n 5`", d, "either", argv=e2e)
    d = toy(); d["sweep"]["n"] = 10**30
    add("n-1e30-check", "[sweep] n = 10**30", d)
    d = toy(); d["sweep"]["km_step"] = 1e-9
    add("km-step-1e-9", "[sweep] km_step = 1e-9", d)
    d = toy(); d["sweep"]["axes"]["transplant_day"] = [60, 1e308]
    add("axis-day-1e308", "transplant_day axis value 1e308", d)
    d = toy(); d["sweep"]["plots"]["outcomes"] = ["__import__('os')"]
    add("plots-outcome-inject", "plot outcome a Python expression", d)
    d = toy(); d["sweep"]["axes"]["expansion"] = [0.5, 1e9]
    add("axis-param-out-of-bounds", "a parameter axis value far outside its bounds", d)
    C.append(Case("sweep-h-latin1", "sweep", "non-UTF-8 sweep scenario through `sweep`",
                  {"scenario.toml": _b(dumps(toy())) + b"\n# caf\xe9\n"}, e2e, "refuse", "scenario.toml", hand=True))
    C.append(Case("sweep-h-points-bad", "sweep", "--points 99999999999999999999 (beyond the grid)",
                  {"scenario.toml": _b(dumps(toy()))}, e2e + ["--points", "99999999999999999999"], "refuse",
                  "", hand=True))
    return C


def calibration_cases(rng, n_random):
    cases = []
    base = _abs_calibration(load(CALIBRATION), CALIBRATION.parent)
    for i in range(n_random):
        doc, desc, expect, op = mutate(base, rng)
        cases.append(Case(f"calibration-r{i:03d}", "calibration", f"cart_ball: {desc}",
                          {"calibration.toml": _b(dumps(doc))}, ["calibrate", "{d}/calibration.toml", "--dry-run"],
                          expect, "calibration.toml", mutation=op))
    text = dumps(base)
    for j, (data, desc, expect, op) in enumerate(text_mutations(text, rng)[:8]):
        cases.append(Case(f"calibration-t{j:02d}", "calibration", f"cart_ball: {desc}", {"calibration.toml": data},
                          ["calibrate", "{d}/calibration.toml", "--dry-run"], expect, "calibration.toml",
                          mutation=op))
    return cases


def hand_calibration_cases():
    C = []

    def add(cid, desc, edit, expect="refuse", files=None):
        d = _abs_calibration(load(CALIBRATION), CALIBRATION.parent)
        edit(d)
        f = {"calibration.toml": _b(dumps(d))}
        f.update(files or {})
        C.append(Case(f"calibration-h-{cid}", "calibration", desc, f,
                      ["calibrate", "{d}/calibration.toml", "--dry-run"], expect, "calibration.toml", hand=True))

    add("n-huge", "n = 10**30 (dry run)", lambda d: d["calibration"].__setitem__("n", 10**30), "either")
    add("n-1e400", "n = an integer of 400 digits", lambda d: d["calibration"].__setitem__("n", Raw("1" + "0" * 400)))
    add("bounds-nan", "estimate bounds [nan, 1]",
        lambda d: d["estimate"]["product_fitness"].__setitem__("bounds", [float("nan"), 1.0]))
    add("bounds-inverted", "estimate bounds [1.5, 0.2]",
        lambda d: d["estimate"]["product_fitness"].__setitem__("bounds", [1.5, 0.2]))
    add("model-dev-zero", "model = \"/dev/zero\"", lambda d: d["calibration"].__setitem__("model", "/dev/zero"))
    add("scenario-dir", "a product's scenario is a folder",
        lambda d: d["products"]["cd19_donor"].__setitem__("scenarios", [str(ROOT)]))
    add("scenario-latin1", "a product's scenario file is latin-1",
        lambda d: d["products"]["cd19_donor"].__setitem__("scenarios", ["s.toml"]),
        files={"s.toml": b"[scenario]\nname = \"caf\xe9\"\n"})
    add("name-inject", "calibration name with a line break and payload",
        lambda d: d["calibration"].__setitem__("name", f"c\nimport os; os.system('touch {SENTINEL}')\n#"))
    add("output-dev-null", "output = \"/dev/null\" (dry run: either)",
        lambda d: d["calibration"].__setitem__("output", "/dev/null"), "either")
    add("reference-dev-zero", "reference = \"/dev/zero\"", lambda d: d["calibration"].__setitem__("reference",
                                                                                                 "/dev/zero"))
    return C


def parameter_set_cases(rng, n_random):
    cases = []
    pset = load(PSET)
    sc = _abs_scenario(load(SC_PROTOCOL), SC_PROTOCOL.parent)
    sc["scenario"]["parameter_set"] = "pset.toml"
    sc_bytes = _b(dumps(sc))
    for i in range(n_random):
        doc, desc, expect, op = mutate(pset, rng)
        if op == "unknown_key" and "[calibration" in desc:
            expect = "either"  # a parameter set's [calibration] is a free-form record of the fit
        if op in ("ctrl", "payload_name"):
            expect = "either"  # the [calibration] table of a parameter set is provenance only
        cases.append(Case(f"pset-r{i:03d}", "parameter_set", f"cd7_donor: {desc}",
                          {"pset.toml": _b(dumps(doc)), "scenario.toml": sc_bytes},
                          ["check", "{d}/scenario.toml"], expect, "pset.toml", mutation=op))
    text = PSET.read_text(encoding="utf-8")
    for j, (data, desc, expect, op) in enumerate(text_mutations(text, rng)[:6]):
        cases.append(Case(f"pset-t{j:02d}", "parameter_set", f"cd7_donor: {desc}",
                          {"pset.toml": data, "scenario.toml": sc_bytes},
                          ["check", "{d}/scenario.toml"], expect, "pset.toml", mutation=op))
    hand = [("param-out-of-bounds", "a calibrated value far outside bounds",
             lambda d: d["parameters"].__setitem__("product_fitness", 1e9), "refuse"),
            ("param-nan", "a value nan", lambda d: d["parameters"].__setitem__("product_fitness", float("nan")),
             "refuse"),
            ("param-unknown", "an unknown parameter", lambda d: d["parameters"].__setitem__("zz_nope", 1.0), "refuse"),
            ("param-str", "a value written as a string", lambda d: d["parameters"].__setitem__("product_fitness", "1"),
             "refuse"),
            ("dir", "parameter_set is a folder", None, "refuse")]
    for cid, desc, edit, expect in hand:
        if edit is None:
            files = {"pset.toml": ("dir",), "scenario.toml": sc_bytes}
        else:
            d = _copy(pset)
            edit(d)
            files = {"pset.toml": _b(dumps(d)), "scenario.toml": sc_bytes}
        cases.append(Case(f"pset-h-{cid}", "parameter_set", desc, files, ["check", "{d}/scenario.toml"], expect,
                          "pset.toml", hand=True))
    return cases


# ---- data tables -------------------------------------------------------------------------
def _csv_rows(path):
    import csv
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def _csv(rows) -> bytes:
    import csv
    import io
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode("utf-8")


def _fit_argv(model: Path, csv_name="data.csv"):
    return ["fit", str(model), "{d}/" + csv_name, "-e", "k", "--starts", "1", "--no-profile", "-o", "{d}/out"]


def _probe_argv(model: Path, csv_name="data.csv"):
    """Parse-only: ``probe.py data MODEL CSV`` loads the table as `carkinetics fit` does, without fitting
    (an accepted table would otherwise cost a 35 s fit on a loaded machine)."""
    return ["@probe", "data", str(model), "{d}/" + csv_name]


def data_cases(rng, n_random):
    cases = []
    bases = [(DATA_LONG, DECAY), (DATA_NONMEM, DOSED)]
    cell_values = ["nan", "inf", "-inf", "1e308", "-1", "", ".", "abc", "1e400", "0", "1" + "0" * 400, "\x00",
                   "x" * 100_000, "=1+2", "\u2028", "1,5", "\"", "NA", "-0", "1e-320", "true", " 7 "]
    for i in range(n_random):
        path, model = bases[i % 2]
        rows = [list(r) for r in _csv_rows(path)]
        op = rng.choice(["cell", "cell", "cell", "drop_col", "dup_col", "extra_col", "short_row", "long_row",
                         "header_case", "swap_rows", "huge_rows"])
        expect = "either"
        if op == "cell":
            r = rng.randrange(1, len(rows))
            c = rng.randrange(len(rows[0]))
            v = rng.choice(cell_values)
            rows[r][c] = v
            col = rows[0][c].lower()
            if v in ("nan", "inf", "-inf", "1e308", "1e400", "1" + "0" * 400) and col in ("time",):
                expect = "refuse"
            desc = f"row {r} column {rows[0][c]} = {v[:20]!r}{'...' if len(v) > 20 else ''}"
        elif op == "drop_col":
            c = rng.randrange(len(rows[0]))
            desc = f"column {rows[0][c]} removed"
            rows = [r[:c] + r[c + 1:] for r in rows]
        elif op == "dup_col":
            c = rng.randrange(len(rows[0]))
            desc = f"column {rows[0][c]} duplicated"
            rows = [r + [r[c]] for r in rows]
            expect = "refuse"
        elif op == "extra_col":
            desc = "an extra column of text"
            rows = [rows[0] + ["note"]] + [r + ["n" * rng.choice([1, 10_000])] for r in rows[1:]]
        elif op == "short_row":
            r = rng.randrange(1, len(rows))
            rows[r] = rows[r][:2]
            desc = f"row {r} has 2 fields"
        elif op == "long_row":
            r = rng.randrange(1, len(rows))
            rows[r] = rows[r] + ["9"] * 5
            desc = f"row {r} has 5 extra fields"
        elif op == "header_case":
            rows[0] = [h.upper() if h.islower() else h.lower() for h in rows[0]]
            desc = "header case flipped"
            expect = "accept"
        elif op == "swap_rows":
            rng.shuffle(rows[1:])
            desc = "rows shuffled"
        else:
            rows = rows + rows[1:] * 20_000
            desc = f"rows repeated 20,000 times ({len(rows):,} rows)"
        cases.append(Case(f"data-r{i:03d}", "data", f"{path.name}: {desc}", {"data.csv": _csv(rows)},
                          _probe_argv(model), expect, "data.csv", mutation=op))
    text = DATA_LONG.read_text(encoding="utf-8")
    for j, (data, desc, expect, op) in enumerate(text_mutations(text, rng, csv=True)):
        if op == "big_comment":
            continue
        cases.append(Case(f"data-t{j:02d}", "data", f"long_good.csv: {desc}", {"data.csv": data},
                          _probe_argv(DECAY), expect, "data.csv", mutation=op))
    return cases


def hand_data_cases():
    C = []

    def add(cid, desc, data, model=DECAY, expect="refuse", **kw):
        C.append(Case(f"data-h-{cid}", "data", desc, {"data.csv": data}, _fit_argv(model), expect, "data.csv",
                      hand=True, timeout=120.0, **kw))

    add("dup-col-covariate", "a duplicated column (k,k) turned into a covariate",
        b"id,time,observable,value,k,k\nA,1,level_obs,800,0.2,0.3\nA,5,level_obs,300,0.2,0.3\n")
    add("dup-col-value", "a duplicated value column",
        b"id,time,observable,value,value\nA,1,level_obs,800,1\nA,5,level_obs,300,2\n")
    add("time-1e308", "time = 1e308", b"id,time,observable,value\nA,1,level_obs,800\nA,1e308,level_obs,300\n")
    add("time-nan", "time = nan", b"id,time,observable,value\nA,1,level_obs,800\nA,nan,level_obs,300\n")
    add("time-inf", "time = inf", b"id,time,observable,value\nA,1,level_obs,800\nA,inf,level_obs,300\n")
    add("value-inf", "value = inf", b"id,time,observable,value\nA,1,level_obs,800\nA,2,level_obs,inf\n")
    add("id-100000", "a 100,000-character patient id",
        b"id,time,observable,value\n" + b"P" * 100_000 + b",1,level_obs,800\n" + b"P" * 100_000
        + b",5,level_obs,300\n", expect="either")
    add("addl-1e9", "NONMEM ADDL = 1e9 (a billion additional doses)",
        b"ID,TIME,AMT,EVID,CMT,DV,ADDL,II\n1,0,1000,1,depot,.,1000000000,1\n1,1,.,0,conc,15,.,.\n"
        b"1,2,.,0,conc,20,.,.\n", model=DOSED, expect="either")
    add("addl-1e30", "NONMEM ADDL = 1e30",
        b"ID,TIME,AMT,EVID,CMT,DV,ADDL,II\n1,0,1000,1,depot,.,1e30,1\n1,1,.,0,conc,15,.,.\n", model=DOSED)
    add("ii-tiny", "NONMEM II = 1e-9 with ADDL = 1000",
        b"ID,TIME,AMT,EVID,CMT,DV,ADDL,II\n1,0,1000,1,depot,.,1000,1e-9\n1,1,.,0,conc,15,.,.\n", model=DOSED,
        expect="either")
    add("amt-nan", "AMT = nan", b"ID,TIME,AMT,EVID,CMT,DV\n1,0,nan,1,depot,.\n1,1,.,0,conc,15\n", model=DOSED)
    add("cmt-huge", "CMT = 10**30", b"ID,TIME,AMT,EVID,CMT,DV\n1,0,1000,1," + b"1" + b"0" * 30
        + b",.\n1,1,.,0,conc,15\n", model=DOSED)
    add("latin1", "latin-1 patient id", b"id,time,observable,value\nJos\xe9,1,level_obs,800\n")
    add("dir", "data path is a folder", ("dir",))
    add("dev-zero", "data path a symlink to /dev/zero", ("symlink", "/dev/zero"))
    add("fifo", "data path a named pipe", ("fifo",))
    add("100k-columns", "100,000 columns", (",".join(["id", "time", "observable", "value"]
                                                      + [f"c{i}" for i in range(100_000)]) + "\n"
                                            + ",".join(["A", "1", "level_obs", "800"] + ["1"] * 100_000)
                                            + "\n").encode(), expect="either")
    add("quoted-newline", "a quoted field with a line break",
        b'id,time,observable,value\n"A\nimport os",1,level_obs,800\n', expect="either")
    return C


def output_cases():
    C = []
    sc = str(SC_COHORT)

    def add(cid, desc, out, expect="refuse", files=None, names=None):
        C.append(Case(f"output-h-{cid}", "output", desc, files or {}, ["run", sc, "--n", "5", "-o", out], expect,
                      names if names is not None else out, hand=True))

    add("empty", "-o \"\"", "", names="")
    add("dev-null", "-o /dev/null", "/dev/null")
    add("proc", "-o /proc/1/fuzz (a read-only file system)", "/proc/1/fuzz")
    add("sys", "-o /sys/fuzz (read-only for root too)", "/sys/fuzz")
    add("readonly-dir", "-o a folder chmod 0555 (root writes anyway: either)", "{d}/ro/out", "either",
        files={"ro": ("dir_ro",)})
    add("existing-file", "-o an existing regular file", "{d}/file", files={"file": b"x"})
    add("under-file", "-o a path below a regular file", "{d}/file/out", files={"file": b"x"}, names="file")
    add("long-component", "-o with a 300-character folder name", "{d}/" + "o" * 300, names="o" * 40)
    add("long-path", "-o a 5,000-character path", "{d}/" + "/".join(["p" * 200] * 25), names="p" * 40)
    add("newline", "-o a folder name with a line break (either)", "{d}/out\nx", "either", names="out")
    add("nul", "-o a path with a NUL byte", "{d}/out\x00x", names="out")
    add("dev-zero", "-o /dev/zero", "/dev/zero")
    add("root", "-o / (existing folder with other files: either, must not delete anything)", "{d}/existing",
        "either", files={"existing/keep.txt": b"keep me"})
    add("symlink-dev-null", "-o a symlink to /dev/null", "{d}/link", files={"link": ("symlink", "/dev/null")},
        names="link")
    add("fifo", "-o a named pipe", "{d}/pipe", files={"pipe": ("fifo",)}, names="pipe")
    return C


def escape_cases():
    """Expression-whitelist escapes: every payload in every expression site of the tiny model."""
    C = []
    model = load(MODEL)
    cohort = _cohort_with()
    cohort["events"] = [{"name": "boost", "time": 30, "when": "expanding > 0", "add": {"expanding": "1.0"}}]
    i = 0
    for k, payload in enumerate(ESCAPES):
        site_kind, site = ESCAPE_SITES[k % len(ESCAPE_SITES)]
        m, s = _copy(model), _copy(cohort)
        doc = m if site_kind == "model" else s
        parent = _get_parent(doc, site)
        parent[site[-1]] = payload
        files = {"model.toml": _b(dumps(m)), "scenario.toml": _b(dumps(s))}
        names = "model.toml" if site_kind == "model" else "scenario.toml"
        shown = payload if len(payload) < 70 else payload[:40] + f"... ({len(payload):,} characters)"
        C.append(Case(f"escape-{i:03d}", "expression", f"{'.'.join(map(str, site))} = {shown!r}", files,
                      ["run", "{d}/scenario.toml", "--n", "5", "-o", "{d}/out"],
                      "either" if payload in ("1_000", "0x10", "0o17", "0b101", "1e999", "-1e999", "inf", "nan",
                                              "\\\n1", "   ", "# just a comment", "2 ** 100000", "10 ** 10 ** 10",
                                              "9 ** 9 ** 9 ** 9",
                                              "+".join(["alpha"] * 200_000), "-" * 100_000 + "1",
                                              "1 if " * 20_000 + "1" + " else 1" * 20_000,
                                              "exp(" * 5000 + "1" + ")" * 5000, "not " * 50_000 + "1",
                                              "(" * 100_000 + "1" + ")" * 100_000) else "refuse",
                      names, payload=True, compiles=True, mutation="escape"))
        i += 1
    return C


def generate(seed: int = 12, scale: float = 1.0) -> list[Case]:
    """The whole campaign: about 600 cases (``scale`` multiplies the random ones)."""
    rng = random.Random(seed)

    def n(x):
        return max(1, int(round(x * scale)))

    cases = []
    cases += model_cases(rng, n(75)) + hand_model_cases()
    cases += scenario_cases(rng, n(75)) + hand_scenario_cases()
    cases += sweep_cases(rng, n(45)) + hand_sweep_cases()
    cases += calibration_cases(rng, n(35)) + hand_calibration_cases()
    cases += parameter_set_cases(rng, n(25))
    cases += data_cases(rng, n(45)) + hand_data_cases()
    cases += output_cases()
    cases += escape_cases()
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return cases


# ------------------------------------------------------------------------------------------
# laying out a case
# ------------------------------------------------------------------------------------------
def materialise(case: Case, folder: Path) -> None:
    """Write the case's files into ``folder`` (created)."""
    import os

    folder.mkdir(parents=True, exist_ok=True)
    for rel, content in case.files.items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        elif content[0] == "dir":
            p.mkdir(exist_ok=True)
        elif content[0] == "dir_ro":
            p.mkdir(exist_ok=True)
            os.chmod(p, 0o555)
        elif content[0] == "symlink":
            if p.is_symlink() or p.exists():
                p.unlink()
            os.symlink(content[1], p)
        elif content[0] == "fifo":
            os.mkfifo(p)
        elif content[0] == "sparse":
            with open(p, "wb") as fh:
                fh.truncate(content[1])
        else:
            raise ValueError(content)


def argv_for(case: Case, folder: Path) -> list[str]:
    return [a.replace("{d}", str(folder)) for a in case.argv]
