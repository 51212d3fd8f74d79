"""Broken declarations are reported as path:line:col: field: message, every error at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.catalog import Catalog
from harness.spec import CAPABILITIES, MethodSpec, TaskSpec
from harness.yamlio import DeclarationError, load, parse_text, validate

GOOD_TASK = """\
id: t
name: T
family: toy
paper: p
implementations: {torch: "t.py:T"}
provides: [value, grad]
metrics:
  - {id: objective, unit: "1", lower_is_better: true}
budget: {steps: 10}
"""

# (file name below the catalog root, content, the exact lines `harness validate` must print)
BROKEN = [
    (
        "tasks/t.yaml",
        GOOD_TASK.replace("budget: {steps: 10}", "budget: {steps: 0}"),
        ["tasks/t.yaml:9:10: budget.steps: Input should be greater than or equal to 1"],
    ),
    (
        "tasks/t.yaml",
        GOOD_TASK + "colour: red\n",
        ["tasks/t.yaml:10:1: colour: unknown field"],
    ),
    (
        "tasks/t.yaml",
        GOOD_TASK.replace("lower_is_better: true", "lower_is_better: maybe").replace("[value, grad]", "[value, gradd]"),
        [
            "tasks/t.yaml:6:19: provides.1: Input should be "
            + ", ".join(map(repr, CAPABILITIES[:-1])) + f" or {CAPABILITIES[-1]!r}",
            "tasks/t.yaml:8:32: metrics.0.lower_is_better: Input should be a valid boolean",
        ],
    ),
    (
        "tasks/t.yaml",
        GOOD_TASK.replace("id: objective", "id: loss"),
        ["tasks/t.yaml:7:1: metrics: every task declares an 'objective' metric"],
    ),
    (
        "tasks/t.yaml",
        GOOD_TASK.replace("budget:", "  - {id: error, unit: \"1\", lower_is_better: true}\nbudget:"),
        ["tasks/t.yaml:9:6: metrics.1.id: metric 'error' is a column the store already records for every run; "
         "choose another id"],
    ),
    (
        "tasks/t.yaml",
        GOOD_TASK + "target: {metric: accuracy, value: 0.9}\n",
        ["tasks/t.yaml:10:10: target.metric: target metric 'accuracy' is not among metrics ['objective']"],
    ),
    (
        "tasks/t.yaml",
        GOOD_TASK.replace("id: t\n", "id: other\n"),
        ["tasks/t.yaml:1:1: id: id 'other' differs from the file name 't'"],
    ),
    (
        "tasks/t.yaml",
        GOOD_TASK + "parameters:\n  n: {default: 3, choices: [1, 2]}\n",
        ["tasks/t.yaml:11:7: parameters.n.default: default 3 is not one of choices [1, 2]"],
    ),
    (
        "methods/m.yaml",
        "id: m\nid: m\n",
        ["methods/m.yaml:2:1: duplicate key 'id'"],
    ),
    (
        "methods/m.yaml",
        "id: m\nname: [unclosed\n",
        ["methods/m.yaml:3:1: while parsing a flow sequence; expected ',' or ']', but got '<stream end>'"],
    ),
    (
        "methods/m.yaml",
        "",
        ["methods/m.yaml:1:1: expected a mapping of fields, found an empty file"],
    ),
    (
        "methods/m.yaml",
        "id: m\nname: M\nfamily: f\npaper: p\nrequires: [grad]\nhyperparameters: {lr: 0.1}\n"
        "implementations:\n  torch: {optimizer: torch.optim.SGD, args: {lr: learning_rate}}\n",
        ["methods/m.yaml:8:46: implementations.torch.args.lr: 'learning_rate' is not a hyperparameter (declared: ['lr'])"],
    ),
    (
        "methods/m.yaml",
        "id: m\nname: M\nfamily: f\npaper: p\nrequires: [grad]\n"
        "implementations:\n  jax: {optimizer: optax.sgd, entry: 'a.py:B'}\n",
        ["methods/m.yaml:7:3: implementations.jax: give exactly one of 'optimizer' (a library optimizer) or 'entry' (module:attr)"],
    ),
    (
        "methods/m.yaml",
        "id: M\n",
        [
            "methods/m.yaml:1:1: family: required field is missing",
            "methods/m.yaml:1:1: id: String should match pattern '^[a-z0-9][a-z0-9_.-]*$'",
            "methods/m.yaml:1:1: implementations: required field is missing",
            "methods/m.yaml:1:1: name: required field is missing",
            "methods/m.yaml:1:1: paper: required field is missing",
            "methods/m.yaml:1:1: requires: required field is missing",
        ],
    ),
    (
        "hardware/h.yaml",
        "id: h\nname: H\ndevice: tpu\n",
        ["hardware/h.yaml:3:1: device: Input should be 'cpu' or 'cuda'"],
    ),
    (
        "hardware/h.yaml",
        "id: h\nname: H\ndevice: cpu\nranks: 2\n",
        ["hardware/h.yaml:4:1: ranks: a profile with ranks > 1 names its dist_backend (gloo or nccl)"],
    ),
    (  # cross-file references point at the referring line
        "suites/s.yaml",
        "id: s\nhardware: [cpu, tpu]\nentries:\n  - tasks: [nope]\n    methods: [sleepy-gd, nada]\n"
        "    hyperparameters: {sleepy-gd: {momentum: 0.9}}\n",
        [
            "suites/s.yaml:2:17: hardware.1: unknown hardware profile 'tpu' (known: cpu, cpu-ranks, gpu, multi-gpu)",
            "suites/s.yaml:4:13: entries.0.tasks.0: unknown task 'nope' (known: quadratic, slow-quadratic)",
            "suites/s.yaml:5:26: entries.0.methods.1: unknown method 'nada' (known: sleepy-gd)",
            "suites/s.yaml:6:23: entries.0.hyperparameters.sleepy-gd: method 'sleepy-gd' has no hyperparameter "
            "'momentum' (has ['init_sleep_s', 'lr', 'sleep_s', 'step_sleep_s'])",
        ],
    ),
    (
        "suites/s.yaml",
        "id: s\nentries:\n  - tasks: [quadratic]\n    methods: [sleepy-gd]\n    grid: {d: [3, 4], rank: [1]}\n",
        ["suites/s.yaml:5:23: entries.0.grid.rank: task 'quadratic' has no parameter 'rank' (has ['d', 'kappa'])"],
    ),
]


@pytest.mark.parametrize(("name", "content", "expected"), BROKEN, ids=[f"{i}-{b[0]}" for i, b in enumerate(BROKEN)])
def test_validate_reports_file_line_and_field(tmp_path, monkeypatch, load_test_catalog, name, content, expected):
    root = tmp_path / "user"
    (root / name).parent.mkdir(parents=True)
    (root / name).write_text(content)
    monkeypatch.chdir(root)
    with pytest.raises(DeclarationError) as info:
        load_test_catalog(root)
    assert [str(issue) for issue in info.value.issues] == expected


def test_all_errors_of_all_files_at_once(tmp_path, monkeypatch):
    (tmp_path / "tasks").mkdir()
    (tmp_path / "methods").mkdir()
    (tmp_path / "tasks" / "t.yaml").write_text(GOOD_TASK + "colour: red\nshade: blue\n")
    (tmp_path / "methods" / "m.yaml").write_text("id: m\nid: m\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DeclarationError) as info:
        Catalog.load([tmp_path], builtin=False)
    assert [str(i) for i in info.value.issues] == [
        "methods/m.yaml:2:1: duplicate key 'id'",
        "tasks/t.yaml:10:1: colour: unknown field",
        "tasks/t.yaml:11:1: shade: unknown field",
    ]


def test_duplicate_ids_across_files_name_the_first(tmp_path, monkeypatch):
    for sub in ("a", "b"):
        (tmp_path / "tasks" / sub).mkdir(parents=True)
        (tmp_path / "tasks" / sub / "t.yaml").write_text(GOOD_TASK)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DeclarationError) as info:
        Catalog.load([tmp_path], builtin=False)
    assert [str(i) for i in info.value.issues] == ["tasks/b/t.yaml:1:1: id: task 't' is already declared at tasks/a/t.yaml:1"]


def test_positions_of_keys_and_items():
    doc = parse_text("a:\n  b: [1, 2]\n  c:\n    - x\n    - y\n", path="p.yaml")
    assert doc.position(("a", "b")) == (2, 3)
    assert doc.position(("a", "c", 1)) == (5, 7)
    assert doc.position(("a", "missing", 3)) == (1, 1)  # falls back to the nearest marked ancestor


def test_scalars_are_plain_builtins():
    doc = parse_text("f: 1.0e-8\ni: 3\nb: true\ns: text\nn: null\n", path="p.yaml")
    assert doc.data == {"f": 1e-8, "i": 3, "b": True, "s": "text", "n": None}
    assert [type(v) for v in doc.data.values()] == [float, int, bool, str, type(None)]


def test_yaml_1_2_semantics():
    # YAML 1.1 would read these as booleans; 1.2 keeps them strings.
    assert parse_text("a: yes\nb: off\n", path="p.yaml").data == {"a": "yes", "b": "off"}


def test_validate_a_single_document(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(textwrap.dedent(GOOD_TASK))
    spec = validate(load(path), TaskSpec)
    assert spec.budget.steps == 10 and spec.metric("objective").lower_is_better
    with pytest.raises(DeclarationError, match="expected a mapping of fields, found a list"):
        validate(parse_text("- 1\n", path="x.yaml"), MethodSpec)


def test_unreadable_file_is_reported(tmp_path):
    with pytest.raises(DeclarationError, match="cannot read"):
        load(Path(tmp_path / "absent.yaml"))


def test_unknown_probe_points_at_its_id(tmp_path, monkeypatch):
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "t.yaml").write_text(GOOD_TASK + "probes:\n  - {id: no-such-probe}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DeclarationError) as info:
        Catalog.load([tmp_path], builtin=False)
    (issue,) = info.value.issues
    assert str(issue).startswith("tasks/t.yaml:11:6: probes.0.id: unknown probe 'no-such-probe' (known: ")


def _parsed(text: str) -> tuple:
    """What parse_text gives: the data and marks, or the issues."""
    try:
        document = parse_text(text, path="p.yaml")
    except DeclarationError as exc:
        return ("issues", exc.issues)
    return ("document", repr(document.data), document.marks)


#: Texts where the two parsers might part: empty values and items, block and quoted scalars,
#: anchors, flow collections, comments, unicode, tags, documents, directives, tabs, bad syntax.
TRICKY = [
    "a:\nb: 1\n", "- \n- x\n", "a: [1, , 2]\n", "a: {b: }\n", "a: |\n  x\n  y\nb: >-\n  folded\n  text\n",
    "a: 'it''s'\nb: \"\\u00e9\\t\"\nc: é\n", "a: &x [1, 2]\nb: *x\nc: &y\n  d: 1\ne: *y\n", "# only a comment\n", "",
    "a: 1 # trailing\n# between\nb: 2\n", "? a\n: 1\n", "a: !!str 1\nb: !!int '2'\n", "%YAML 1.2\n---\na: 1\n",
    "a: 1\n...\n", "a: 1\n---\nb: 2\n", "a:\n\t- x\n", "a: [1, 2\n", "a: b: c\n", "- a\nb: 1\n", "a: 0x1F\nb: 1_000\n",
    "a: .inf\nb: -.Inf\nc: .NaN\nd: 1e3\ne: 1.5e-8\n", "a: ~\nb: Null\nc: TRUE\nd: yes\n", "'k': 1\n\"q\": 2\n",
    "a:\n  - b: 1\n    c: [x, {d: e}]\n  -\n    - 1\n", "a: 1\na: 2\n", "<<: {x: 1}\n", "&k key: 1\n", "a: *nowhere\n",
    "a: !!set\nb: 1\n", "a: !custom\n\nb: 2\n",  # a tag on an empty value: its mark differs in libyaml
]


def test_libyaml_events_give_what_ruamel_gives(monkeypatch):
    from harness import yamlio
    from harness.catalog import builtin_root

    here = Path(__file__).parent
    files = sorted({*builtin_root().rglob("*.yaml"), *here.rglob("*.yaml")})
    from test_declarations import CORPUS

    texts = [p.read_text(encoding="utf-8") for p in files] + [c for _, c, _ in BROKEN] + [c[1] for c in CORPUS] + TRICKY
    fast = [_parsed(text) for text in texts]
    taken = sum(yamlio._libyaml_events(text) is not None for text in texts)
    monkeypatch.setattr(yamlio, "_libyaml_events", lambda text: None)
    for text, got in zip(texts, fast):
        assert got == _parsed(text), text[:200]
    assert len(files) > 50 and taken > len(files)  # libyaml read every catalog file and more
