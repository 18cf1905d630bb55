"""Keyword rules on top of the model, and the papers.jsonl reader's errors."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from vpt_tracker.classify.data import Example, read_jsonl
from vpt_tracker.classify.model import CatalogueModel
from vpt_tracker.classify.rules import RuleSet
from vpt_tracker.cli import main
from vpt_tracker.config import ConfigError, load_settings
from vpt_tracker.dumps import read_corpus_jsonl
from vpt_tracker.errors import UserError


def test_terms_match_whole_words_on_folded_text() -> None:
    rules = RuleSet(include=["visual prompt"])
    assert rules.match("Learning Visual-Prompts? no: a Visual  Prompt for ViTs") is not None
    assert rules.match("Visual prompting") is None  # whole words only
    assert rules.match("Vis\\'ual prompt") is not None  # LaTeX accents fold away
    assert rules.match("nothing here") is None


@pytest.mark.parametrize(
    ("term", "matches", "misses"),
    [
        ("C++", ["a C++ library", "in c++.", "(C++)", "C++ and Python"], ["vitamin C", "C#", "C++11", "C+"]),
        ("C#", ["written in C#, fast", "c# code"], ["section C of", "C++", "C#m"]),
        ("F#", ["F# programs"], ["the F score"]),
        (".NET", ["the .NET runtime", "(.NET)"], ["a neural net", "the network"]),
        ("A*", ["A* search", "an A*-style planner"], ["a search", "A** grade"]),
        ("C++ code", ["fast C++  code here"], ["C++ coder", "C code"]),
    ],
)
def test_a_term_whose_symbols_folding_drops_matches_them_as_written(
    term: str, matches: list[str], misses: list[str]
) -> None:
    """Folding reads `+`, `#`, `*` and a word's leading `.` as a space: `C++` and `C#` were the
    term "c", and an include queued every paper that says "vitamin C" or "section C"; `.NET`
    was "net". Such a term matches its characters, case ignored, as a token of the raw text."""
    rules = RuleSet(include=[term])
    assert [text for text in matches if rules.match(text) is None] == []
    assert [text for text in misses if rules.match(text) is not None] == []


def test_hyphens_in_a_term_stay_separators() -> None:
    """`R-CNN` and `3D-` fold to "r cnn" and "3d" and match as before: a hyphen carries no meaning."""
    assert RuleSet(include=["R-CNN"]).match("Faster R CNN and Mask R-CNN") is not None
    assert RuleSet(include=["R-CNN"]).match("an RCNN") is None
    assert RuleSet(include=["3D-"]).match("3D-aware prompts") is not None
    assert RuleSet(include=["3D-"]).match("3Daware") is None


def test_regex_rules_and_exclude_wins() -> None:
    rules = RuleSet(include=["/base-to-novel|base to new/"], exclude=["text-to-image"])
    hit = rules.match("Strong Base-to-Novel generalization")
    assert hit is not None and hit.describe() == "include: /base-to-novel|base to new/"
    hit = rules.match("base-to-novel prompts for text-to-image diffusion")
    assert hit is not None and hit.describe() == "exclude: text-to-image"
    assert not RuleSet() and RuleSet(exclude=["x"])


@pytest.mark.parametrize("rule", ["/([unclosed/", "  ", "/"])
def test_bad_rules_are_user_errors(rule: str) -> None:
    with pytest.raises(UserError, match="bad include rule"):
        RuleSet(include=[rule])


@pytest.mark.parametrize("kind", ["include", "exclude"])
@pytest.mark.parametrize("rule", ["//", "/prompt|/", "/(visual )?prompts?|/", "/(visual)?/", r"/\s*/"])
def test_a_regex_that_matches_the_empty_text_is_refused(kind: str, rule: str) -> None:
    """A regex that matches the empty text matches every paper (a search finds it at the
    start of any text): a stray `|` (`/prompt|/`) or an optional whole pattern queued every
    paper of the night, or as an exclude silently dropped every one."""
    with pytest.raises(UserError, match=rf"^bad {kind} rule .*: it matches every paper"):
        RuleSet(**{kind: [rule]})
    # A pattern that needs something of the text, even nothing but a position, stays allowed.
    kept = RuleSet(**{kind: ["/prompt|prefix/", r"/(?=prompt)/", r"/\bvpt\b/", "/ /"]})
    assert kept.match("visual prompts") is not None and kept.match("nothing") is None


def test_a_rule_that_backtracks_exponentially_is_refused() -> None:
    """`/(\\w+\\s?)+$/` took 2.7 s on 24 letters and a "!", four times more for each two letters
    (the engine tries every way to split the letters between rounds): an abstract ending in a
    full stop hung the nightly run."""
    explosive = [r"/(\w+\s?)+$/", r"/^(\w+\s*)*:/", r"/(a+)+b/", r"/(\w+-?){1,10}:/", r"/(.*,)+x/"]
    for rule in [*explosive, r"/(\w+-\w+)+:/"]:  # (the second `\w+` abuts the next round's first)
        with pytest.raises(UserError, match=r"^bad exclude rule .*: a repeated group holds a repeat"):
            RuleSet(exclude=[rule])
    # Repeats whose rounds are separated, possessive or atomic stay allowed, and are quick.
    safe = [
        r"/(\w+\s+)+prompt/",
        r"/(?:[a-z]+-)+prompt/",
        r"/(\w+\s){0,3}prompt/",
        r"/(?:\w+\s?)++$/",
        r"/(?:(?>\w+)\s?)+$/",
        r"/prompt[- ]?tun(ing|ed)/",
        r"/(\d+\.)+\d+/",
    ]
    rules = RuleSet(include=safe)
    hostile = "Visual prompt tuning " + "a" * 40 + "!"
    start = time.perf_counter()
    assert rules.match(hostile) is not None and rules.match("a" * 40 + "!") is None
    assert time.perf_counter() - start < 1


def test_a_bad_rule_is_a_config_error_naming_its_key(tmp_path: Path) -> None:
    """A bad rule was found only when a catalogue was scored: the nightly run stored the night's
    papers, failed that catalogue, and no later run scored them for it (new papers only)."""
    config = tmp_path / "c.toml"
    sources = "".join(
        f"[sources.{name}]\nenabled = false\n" for name in ("arxiv_api", "arxiv_rss", "openreview", "cvf")
    )
    for kind, rule, message in [
        ("include", "/(/", "not a valid regular expression"),
        ("exclude", r"/(\w+\s?)+$/", "a repeated group holds a repeat"),
        ("include", " - ", "it has no letters or digits"),
        ("include", "/prompt|/", "it matches every paper"),
    ]:
        rules = f'[[catalogues]]\nname = "vpt"\n[catalogues.rules]\n{kind} = ["ok", {json.dumps(rule)}]\n'
        config.write_text(sources + rules, encoding="utf-8")
        expected = rf"^bad config: catalogues\.0\.rules\.{kind}: .*bad {kind} rule .*: {message}"
        with pytest.raises(ConfigError, match=expected):
            load_settings(config)
        # So every command stops before it starts, `run nightly` included (exit 2: bad config).
        database = f"sqlite:///{tmp_path / 'store.db'}"
        result = CliRunner().invoke(main, ["--config", str(config), "--database", database, "run", "nightly"])
        assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
        assert f"catalogues.0.rules.{kind}" in result.stderr and message in result.stderr


def test_rules_override_the_threshold(model: CatalogueModel) -> None:
    off_topic = Example(
        "Gaussian splatting for city-scale driving", "We render large scenes with 3D Gaussians."
    )
    on_topic = Example("Visual prompt tuning", "We learn visual prompts for a frozen vision transformer.")
    (plain,) = model.score([off_topic])
    assert not model.should_queue(plain)
    rules = RuleSet(include=["gaussian splatting"], exclude=["frozen vision transformer"])
    forced, excluded = model.score([off_topic, on_topic], rules)
    assert forced.rule == "include: gaussian splatting" and model.should_queue(forced)
    assert excluded.rule == "exclude: frozen vision transformer" and not model.should_queue(excluded)
    assert excluded.relevance >= model.relevance.threshold  # the model alone would have queued it


def test_jsonl_reader_accepts_the_corpus_format_and_names_bad_lines(tmp_path: Path) -> None:
    good = {
        "id": "2503.1",
        "title": "T",
        "summary": "S",
        "authors": ["A"],
        "categories": ["cs.CV"],
        "comment": None,
    }
    path = tmp_path / "papers.jsonl"
    path.write_text(json.dumps(good) + "\n\n" + json.dumps({"title": "U"}) + "\n", encoding="utf-8")
    papers = list(read_jsonl(path))
    assert papers[0] == Example("T", "S", None, (), "2503.1") and not papers[1].has_abstract
    for body, message in [
        ('{"title": "ok"}\n{not json\n', "papers.jsonl:2: not valid JSON"),
        ('{"title": "ok"}\n{"abstract": "no title"}\n', "papers.jsonl:2: missing 'title'$"),
        ('{"title": " "}\n', "papers.jsonl:1: 'title' is empty$"),
        # what the line holds, not "missing or empty 'title'" for a title that is a number
        ('{"title": 5}\n', "papers.jsonl:1: 'title' must be a string, not a number$"),
        ('{"title": ["t"]}\n', "papers.jsonl:1: 'title' must be a string, not an array$"),
        ('{"title": "t", "comment": 5}\n', "papers.jsonl:1: 'comment' must be a string, not a number$"),
        ("[1, 2]\n", "papers.jsonl:1: expected a JSON object, got an array$"),
        # JSON's names for what a line holds, not Python's ("got NoneType", "got int")
        ("null\n", "papers.jsonl:1: expected a JSON object, got null$"),
        ("7\n", "papers.jsonl:1: expected a JSON object, got a number$"),
        ('"a title"\n', "papers.jsonl:1: expected a JSON object, got a string$"),
        ("true\n", "papers.jsonl:1: expected a JSON object, got true$"),
        ('[{"title": "a"},\n {"title": "b"}]\n', "papers.jsonl:1: .* not a JSON array"),
        # the same array on one line is valid JSON: it said only "got an array"
        (
            '[{"title": "a"}, {"title": "b"}]\n',
            "papers.jsonl:1: expected a JSON object, got an array of them; "
            "expected one JSON object per line, not a JSON array$",
        ),
        (
            '{"title": "t", "abstract": 5}\n',
            "papers.jsonl:1: 'abstract' and 'summary' must be strings",
        ),
        # a number was a TypeError traceback; a string became one label per character
        ('{"title": "t", "labels": 5}\n', "papers.jsonl:1: 'labels' must be a list of strings"),
        ('{"title": "t", "labels": "pixel"}\n', "papers.jsonl:1: 'labels' must be a list of strings"),
        ('{"title": "t", "labels": ["pixel", 2]}\n', "papers.jsonl:1: 'labels' must be a list of strings"),
        # json.loads raised RecursionError and ValueError here: tracebacks, not the line
        (
            '{"title": "t", "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
            r"papers.jsonl:1: .*nested too deeply",
        ),
        ('{"title": "t", "id": 1' + "0" * 5_000 + "}\n", r"papers.jsonl:1: .*4300 digits"),
    ]:
        path.write_text(body, encoding="utf-8")
        with pytest.raises(UserError, match=message):
            list(read_jsonl(path))
    with pytest.raises(UserError, match="cannot read"):
        list(read_jsonl(tmp_path / "absent.jsonl"))
    # A byte-order mark (PowerShell and Windows editors write one) is not part of the data.
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(good).encode() + b"\r\n")
    assert list(read_jsonl(path)) == [Example("T", "S", None, (), "2503.1")]


@pytest.mark.parametrize("kind", ["include", "exclude"])
@pytest.mark.parametrize(
    ("rule", "why"),
    [
        ("/zebra/i", "flags after the closing `/` are not read"),
        ("/visual prompt/gi", "flags after the closing `/` are not read"),
        ("/prompt[- ]?tun(ing|ed)", "a regex must end with `/`"),
    ],
)
def test_a_rule_that_opens_a_regex_and_does_not_close_it_is_refused(kind: str, rule: str, why: str) -> None:
    """`/zebra/i` (a Perl or JavaScript habit) does not end with `/`, so it was read as the plain
    term "zebra i": it matched "a zebra i saw" and never "Zebra stripes", without a word; a
    regex missing its closing `/` became a term of its words the same way."""
    with pytest.raises(UserError, match=rf"^bad {kind} rule {re.escape(repr(rule))}: {re.escape(why)}"):
        RuleSet(**{kind: [rule]})
    # Case is ignored already: the same regex without its flag matches in any case.
    assert RuleSet(include=["/zebra/"]).match("Zebra stripes") is not None


@pytest.mark.parametrize("kind", ["include", "exclude"])
@pytest.mark.parametrize(("rule", "letters"), [("视觉提示 prompt", "视觉提示"), ("промпт", "промпт")])
def test_a_term_with_letters_folding_cannot_keep_is_refused(kind: str, rule: str, letters: str) -> None:
    """Terms match the text folded to a-z and digits, which drops other scripts' letters:
    "视觉提示 prompt" became the term "prompt" and, as an include, queued every paper that says
    it; "промпт" was refused as having "no letters or digits". A regex reads the raw text."""
    with pytest.raises(UserError) as caught:
        RuleSet(**{kind: [rule]})
    assert str(caught.value) == (
        f"bad {kind} rule {rule!r}: plain terms match the text folded to Latin letters and digits, "
        f"which drops {letters!r}; write the rule as a regex, {'/' + rule + '/'!r}"
    )
    assert RuleSet(**{kind: [f"/{rule}/"]}).match(f"a {rule.upper()} b") is not None
    # Letters that fold to Latin ones stay terms: Greek, accents, ligatures, Roman numerals.
    kept = RuleSet(**{kind: ["α-prompt", "Straße", "ﬁne-tuning", "Ⅳ"]})
    assert kept.match("An $\\alpha$ prompt for strasse fine tuning") is not None


def test_an_id_written_as_a_number_keeps_its_digits(tmp_path: Path) -> None:
    """JSON's reader makes `2203.10100` the float 2203.101: the classifier's readers took the
    paper as "2203.101" (no arXiv id, so it was known by its title alone), and `ingest-jsonl`
    refused the line ("'id' must be a string, not a number"). Every reader of papers files
    now reads a numeric id as the text it was written as."""
    path = tmp_path / "papers.jsonl"
    path.write_text(
        '{"id": 2203.10100, "title": "Visual prompt tuning", "summary": "We tune prompts.", "x": 0.50}\n',
        encoding="utf-8",
    )
    [example] = read_jsonl(path)
    assert example.id == "2203.10100" and example.key() == "2203.10100"
    [record] = read_corpus_jsonl(path)
    assert record.arxiv_id == "2203.10100" and record.source_id == "2203.10100"
    path.write_text('{"id": 7, "title": "Visual prompt tuning"}\n', encoding="utf-8")
    assert next(read_jsonl(path)).id == "7"
    with pytest.raises(UserError, match=r"papers.jsonl:1: 'id' '7' is not an arXiv id$"):
        read_corpus_jsonl(path)
    path.write_text('{"id": true, "title": "Visual prompt tuning"}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"papers.jsonl:1: 'id' must be a string, not true$"):
        read_corpus_jsonl(path)


def _both_readers_refuse(path: Path, expected: str) -> None:
    """The classifier's and the corpus reader's error for `path` is `expected`, word for word."""
    for read in (lambda: list(read_jsonl(path)), lambda: read_corpus_jsonl(path)):
        with pytest.raises(UserError) as caught:
            read()
        assert str(caught.value) == expected


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_a_papers_file_in_utf_16_says_so(tmp_path: Path, encoding: str) -> None:
    """Windows PowerShell 5's `>` and `Out-File` write UTF-16 with a byte-order mark: the reader
    replaced its bytes and said "papers.jsonl:1: not valid JSON (Expecting value)" (and the
    corpus reader "not UTF-8 text"), though every line was valid JSON."""
    path = tmp_path / "papers.jsonl"
    text = '{"title": "Visual prompt tuning"}\n'
    bom = "\ufeff" if encoding == "utf-16-be" else ""  # Python's utf-16 and utf-32 write their own
    path.write_bytes((bom + text).encode(encoding))
    name = "UTF-32" if encoding == "utf-32" else "UTF-16"
    expected = f"{path} is {name} text, not UTF-8: save it as UTF-8"
    _both_readers_refuse(path, expected)


@pytest.mark.parametrize(
    ("encoding", "name"),
    [("utf-16-le", "UTF-16"), ("utf-16-be", "UTF-16"), ("utf-32-le", "UTF-32"), ("utf-32-be", "UTF-32")],
)
def test_a_papers_file_in_utf_16_without_a_mark_says_so(tmp_path: Path, encoding: str, name: str) -> None:
    """`iconv -t UTF-16LE` and Python's `utf-16-le` write no byte-order mark: such a file was
    "papers.jsonl:1: not valid JSON (Expecting value)" (and "not UTF-8 text" to the corpus
    reader), told apart only with a mark. Its NUL bytes say what it is."""
    path = tmp_path / "papers.jsonl"
    text = '{"title": "Visual prompt tuning", "summary": "Prompts for a frozen ViT \u2014 \u89c6\u89c9."}\n'
    path.write_bytes((text * 3).encode(encoding))
    expected = f"{path} is {name} text (without a byte-order mark), not UTF-8: save it as UTF-8"
    _both_readers_refuse(path, expected)
