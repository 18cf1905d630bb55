"""Identity resolution without a database: keys, blocking, and the cost of the fuzzy match."""

from __future__ import annotations

import random
from pathlib import Path

from vpt_tracker import normalize
from vpt_tracker.dumps import read_corpus_jsonl
from vpt_tracker.ingest import IdentityIndex, RecordKeys, _Known, block_keys, record_keys
from vpt_tracker.models import RawRecord

CORPUS = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "corpus").glob("*.jsonl"))


def test_record_keys_normalise_every_identifier() -> None:
    keys = record_keys(
        RawRecord(
            source="x",
            source_id="1",
            title=r"\textbf{Visual}  Prompt-Tuning",
            authors=("Menglin Jia", "Tang, Luming"),
            arxiv_id="arXiv:2203.12119v2",
            doi="https://doi.org/10.1007/ABC",
            openreview_id="https://openreview.net/forum?id=ZvJ2lQQKjk",
            cvf_url="http://openaccess.thecvf.com/content/CVPR2023/html/X_CVPR_2023_paper.html",
        )
    )
    assert keys == RecordKeys(
        arxiv_id="2203.12119",
        doi="10.1007/abc",
        openreview_id="ZvJ2lQQKjk",
        cvf_url="https://openaccess.thecvf.com/content/CVPR2023/html/X_CVPR_2023_paper.html",
        title_key="visual prompt tuning",
        author_keys=("jia", "tang"),
        lead_authors=("mjia", "ltang"),
        author_initials=("m", "l"),
    )


def test_arxiv_id_comes_from_an_arxiv_link_only() -> None:
    from_link = RawRecord(source="x", source_id="1", title="T", abs_url="https://arxiv.org/abs/2401.00001v2")
    not_arxiv = RawRecord(source="x", source_id="2", title="T", abs_url="https://example.org/2401.00001")
    assert record_keys(from_link).arxiv_id == "2401.00001"
    assert record_keys(not_arxiv).arxiv_id is None


def test_a_typo_or_reordered_authors_still_share_a_block() -> None:
    title = "sensorimotor vision transformer"
    assert set(block_keys(title, ("dschill", "jgadzicki"))) & set(
        block_keys("sensorimotor vision transformr", ("jgadzicki", "dschill"))
    )
    # A short title whose only rare word has the typo: the common words and authors carry it.
    assert set(block_keys("visual language hypothesis", ("sli",))) & set(
        block_keys("visual language hypothsis", ("sli",))
    )


def perturbed(record: RawRecord, rng: random.Random) -> RawRecord:
    """The same paper as a venue lists it: a typo in a long word, first two authors swapped."""
    words = record.title.split()
    long_words = [i for i, w in enumerate(words) if len(w) >= 7 and w.isalpha()]
    if long_words:
        i = rng.choice(long_words)
        words[i] = words[i][:2] + words[i][3:]
    authors = list(record.authors)
    if len(authors) >= 2:
        authors[0], authors[1] = authors[1], authors[0]
    return RawRecord(
        source="venue", source_id=record.source_id, title=" ".join(words) + ".", authors=tuple(authors)
    )


def build(records: list[RawRecord]) -> tuple[IdentityIndex, dict[str, _Known]]:
    index = IdentityIndex()
    by_id: dict[str, _Known] = {}
    for record in records:
        keys = record_keys(record)
        if keys.arxiv_id in by_id:
            continue
        known = _Known(len(by_id) + 1, keys)
        index.add(known)
        by_id[keys.arxiv_id or ""] = known
    return index, by_id


def synthetic_papers(real: list[RawRecord], count: int, rng: random.Random) -> list[RawRecord]:
    """Other papers: titles of words drawn from the real titles, authors from real lists."""
    vocabulary = sorted({w for r in real for w in r.title.split() if len(w) >= 4})
    names = sorted({a for r in real for a in r.authors})
    return [
        RawRecord(
            source="synthetic",
            source_id=str(n),
            title=" ".join(rng.choice(vocabulary) for _ in range(rng.randint(4, 11))),
            authors=tuple(rng.sample(names, 3)),
            arxiv_id=f"9{n // 100000:03d}.{n % 100000:05d}",
        )
        for n in range(count)
    ]


def test_fuzzy_finds_every_perturbed_paper_and_its_cost_stays_flat() -> None:
    rng = random.Random(5)
    real = [record for path in CORPUS for record in read_corpus_jsonl(path)]
    queries = [perturbed(record, rng) for record in real[:300]]

    costs = []
    for size in (2_000, 8_000):
        index, by_id = build([*real, *synthetic_papers(real, size, random.Random(size))])
        for query, original in zip(queries, real[:300], strict=True):
            assert index.resolve(record_keys(query)) is by_id[original.arxiv_id or ""], query.title
        costs.append(index.fuzzy_comparisons / len(queries))
    small, large = costs
    assert small >= 1  # every query was compared with at least its own paper
    assert large <= small * 1.5 + 0.5, costs  # 4x the papers, not 4x the comparisons


def test_blocks_never_offer_a_paper_with_another_arxiv_id() -> None:
    index, _ = build(
        [
            RawRecord(
                source="x",
                source_id="1",
                title="Prompt Tuning Works",
                authors=("A B",),
                arxiv_id="2401.00001",
            )
        ]
    )
    same_title_other_id = record_keys(
        RawRecord(
            source="x", source_id="2", title="Prompt Tuning Works", authors=("A B",), arxiv_id="2401.00002"
        )
    )
    assert index.resolve(same_title_other_id) is None
    assert index.fuzzy_comparisons == 0


def test_the_stored_hash_is_the_records_payload_hash() -> None:
    from vpt_tracker.ingest import _stored_form

    for record in read_corpus_jsonl(CORPUS[0])[:20]:
        stored, body, payload_hash = _stored_form(record)
        assert stored is record
        assert payload_hash == record.payload_hash and body == record.to_json()


def test_every_spelling_of_an_arxiv_id_is_the_id() -> None:
    # arXiv registers a DOI for each entry (shown on its abstract page), and lists link it:
    # it named no arXiv id, and became a DOI key that a journal DOI of the paper "conflicted"
    # with. An old-style id may carry its subject class ("math.GT/0309136"), which is not
    # part of the id: the API answers "math/0309136", another key for the same paper.
    spellings = {
        "2203.05557": [
            "2203.05557v3",
            "arXiv:2203.05557",
            "https://arxiv.org/abs/2203.05557v2",
            "10.48550/arXiv.2203.05557",
            "https://doi.org/10.48550/arXiv.2203.05557",
            "doi:10.48550/ARXIV.2203.05557",
        ],
        "math/0309136": [
            "math/0309136v1",
            "math.GT/0309136",
            "arXiv:math.GT/0309136v2",
            "10.48550/arXiv.math/0309136",
        ],
        "hep-th/9901001": ["hep-th/9901001v2", "http://arxiv.org/abs/hep-th/9901001"],
    }
    for identifier, forms in spellings.items():
        assert {form: normalize.arxiv_id(form) for form in forms} == dict.fromkeys(forms, identifier)
    assert normalize.doi("https://doi.org/10.48550/arXiv.2203.05557") is None  # the arXiv id is the key
    keys = record_keys(
        RawRecord(
            source="catalogue", source_id="1", title="T", doi="https://doi.org/10.48550/arXiv.2203.05557"
        )
    )
    assert (keys.arxiv_id, keys.doi) == ("2203.05557", None)
