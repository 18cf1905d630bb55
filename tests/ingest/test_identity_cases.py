"""Identity where ingestion was wrong: papers that look alike but are not one (near titles
published apart, a shared DOI, a track), papers that are one but were spelled apart (Greek
symbol forms, letters without a decomposition), and venues that are no venue.

The near-title pairs are real: each was merged into one paper before `published_apart`
(see `tests/fixtures/ingest/README.md` for where the records come from).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from rapidfuzz import fuzz
from sqlalchemy import Engine, select

from vpt_tracker import normalize
from vpt_tracker.config import OpenReviewVenue
from vpt_tracker.dumps import read_conference_index, read_corpus_jsonl
from vpt_tracker.ingest import author_fields, ingest_records
from vpt_tracker.models import RawRecord
from vpt_tracker.sources.openreview import note_record
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import PaperRow, SightingRow

from . import e2vpt

NEAR = Path(__file__).resolve().parents[1] / "fixtures" / "ingest" / "near-titles"


def conference(file: str, title: str) -> RawRecord:
    (record,) = [r for r in read_conference_index(NEAR / file) if r.title == title]
    return record


def stored(engine: Engine) -> list[tuple[str, str | None, int | None]]:
    with transaction(engine) as session:
        rows = session.scalars(select(PaperRow).order_by(PaperRow.title))
        return [(row.title, row.venue, row.year) for row in rows]


PUBLISHED_APART = {
    "two venues, one year": (
        ("CVPR2022.json", "Mask Transfiner for High-Quality Instance Segmentation"),
        ("ECCV2022.json", "Video Mask Transfiner for High-Quality Video Instance Segmentation"),
    ),
    "two venues, two years": (
        ("NeurIPS2021.json", "Fairness in Ranking under Uncertainty"),
        ("ICML2023.json", "Fairness in Matching under Uncertainty"),
    ),
    "two venues, no authors on one side": (
        ("ICLR2022.json", "Scalable Sampling for Nonsymmetric Determinantal Point Processes"),
        ("ICML2022.json", "Scalable MCMC Sampling for Nonsymmetric Determinantal Point Processes"),
    ),
}


@pytest.mark.parametrize("reverse", [False, True], ids=["in order", "reversed"])
@pytest.mark.parametrize("pair", list(PUBLISHED_APART), ids=list(PUBLISHED_APART))
def test_near_titles_published_apart_are_two_papers(engine: Engine, pair: str, reverse: bool) -> None:
    records = [conference(*which) for which in PUBLISHED_APART[pair]]
    records = records[::-1] if reverse else records
    stats = ingest_records(engine, records)
    assert (stats.new_papers, stats.merged, stats.upgraded) == (2, 0, 0)
    assert sorted(stored(engine)) == sorted((r.title, r.venue, r.year) for r in records)


def test_a_preprint_years_after_a_near_titled_venue_paper_is_another_paper(engine: Engine) -> None:
    # arXiv 2506.21012 "FedSC: ..." shares only the surname Wang with ICML 2023's "FedDisco: ...".
    (preprint,) = read_corpus_jsonl(NEAR / "2025-06-28.jsonl")
    fed_disco = "FedDisco: Federated Learning with Discrepancy-Aware Collaboration"
    published = conference("ICML2023.json", fed_disco)
    stats = ingest_records(engine, [preprint, published])
    assert (stats.new_papers, stats.upgraded) == (2, 0)
    assert (preprint.title, "arXiv", 2025) in stored(engine)


def test_near_titles_sharing_only_a_surname_are_two_papers_even_without_venues(engine: Engine) -> None:
    # The pair above, with FedDisco seen where no venue is given (a preprint listing): only
    # the authors can tell them apart. Huan Wang and Jianyu Wang are two people.
    (preprint,) = read_corpus_jsonl(NEAR / "2025-06-28.jsonl")
    published = conference(
        "ICML2023.json", "FedDisco: Federated Learning with Discrepancy-Aware Collaboration"
    )
    listing = replace(published, venue=None, year=None)
    assert fuzz.ratio(normalize.title_key(preprint.title), normalize.title_key(listing.title)) >= 90
    assert {normalize.author_key(a) for a in preprint.authors} & {
        normalize.author_key(a) for a in listing.authors
    }
    stats = ingest_records(engine, [preprint, listing])
    assert (stats.new_papers, stats.merged) == (2, 0)


@pytest.mark.parametrize(
    "authors",
    [("Wang, Huan", "Li, Haoran"), ("H. Wang", "H. Li"), ("Wang",), ("Huan  Wang",)],
    ids=["last-first", "initials", "bare surname", "extra space"],
)
def test_a_near_title_with_the_same_author_written_otherwise_still_merges(
    engine: Engine, authors: tuple[str, ...]
) -> None:
    (preprint,) = read_corpus_jsonl(NEAR / "2025-06-28.jsonl")
    retitled = RawRecord(
        source="y",
        source_id="1",
        title="FedSC: Federated Learning with Semantic Aware Collaborations",
        authors=authors,
    )
    stats = ingest_records(engine, [preprint, retitled])
    assert (stats.new_papers, stats.merged) == (1, 1)


def test_the_same_title_at_a_later_venue_is_still_one_paper(engine: Engine) -> None:
    # An identical title is the paper itself (a journal version, a re-listing): only near
    # titles need the venues to agree.
    cvpr = conference("CVPR2022.json", "Mask Transfiner for High-Quality Instance Segmentation")
    journal = RawRecord(source="x", source_id="1", title=cvpr.title, venue="TPAMI", year=2024)
    stats = ingest_records(engine, [cvpr, journal])
    assert (stats.new_papers, stats.merged) == (1, 1)
    assert stored(engine) == [(cvpr.title, "CVPR", 2022)]


def test_a_near_title_preprint_still_merges_with_its_venue_version(engine: Engine) -> None:
    cvpr = conference("CVPR2022.json", "Mask Transfiner for High-Quality Instance Segmentation")
    preprint = RawRecord(
        source="arxiv_api",
        source_id="2111.13673",
        title="Mask Transfiner for High-Quality Instance Segmentation.",
        arxiv_id="2111.13673",
        authors=("Lei Ke", "Martin Danelljan"),
    )
    renamed = RawRecord(
        source="y", source_id="1", title="Mask Transfiner for High Quality Instance Segmentations"
    )
    stats = ingest_records(engine, [preprint, cvpr, renamed])
    assert (stats.new_papers, stats.merged, stats.upgraded) == (1, 2, 1)
    assert stored(engine) == [(preprint.title, "CVPR", 2022)]


def test_a_shared_doi_does_not_make_two_arxiv_papers_one(engine: Engine) -> None:
    # Authors of two preprints sometimes paste their proceedings volume's DOI into both.
    volume_doi = "10.1109/CVPR52729.2023"
    records = [
        RawRecord(source="arxiv_api", source_id=i, title=t, arxiv_id=i, doi=volume_doi)
        for i, t in [("2207.00001", "Prompting Frozen Detectors"), ("2207.00002", "Pruning Visual Prompts")]
    ]
    stats = ingest_records(engine, records)
    assert stats.new_papers == 2
    with transaction(engine) as session:
        rows = {row.arxiv_id: row.doi for row in session.scalars(select(PaperRow))}
    assert rows == {"2207.00001": volume_doi.lower(), "2207.00002": None}  # no DOI is held twice


def test_one_arxiv_id_is_one_paper_whatever_dois_its_versions_give(engine: Engine) -> None:
    # Authors change the DOI of an arXiv entry between versions (the conference's, then the
    # journal extension's, or a typo fixed). The new version's DOI "conflicted" with the
    # paper's, so it became a second paper with the same title and no arXiv id (its id was
    # held): scored, queued and reviewed twice.
    title = "Automated Test Generation for REST APIs: No Time to Rest Yet"
    authors = ("Myeongsoo Kim", "Qi Xin", "Saurabh Sinha", "Alessandro Orso")
    versions = [
        RawRecord(
            source="arxiv_api",
            source_id=f"2204.08348v{version}",
            title=title,
            authors=authors,
            arxiv_id="2204.08348",
            arxiv_version=version,
            doi=doi,
            venue="arXiv",
        )
        for version, doi in [(1, "10.1145/3533767.3534401"), (3, "10.1109/ICST.2023.00001")]
    ]
    stats = ingest_records(engine, versions)
    assert (stats.new_papers, stats.merged) == (1, 1)
    with transaction(engine) as session:
        (paper,) = session.scalars(select(PaperRow)).all()
    assert (paper.arxiv_id, paper.doi) == ("2204.08348", "10.1145/3533767.3534401")  # its first DOI


def _note(forum: str, title: str, venueid: str, venue: OpenReviewVenue, *, mdate: int = 1) -> RawRecord:
    """An API v2 note (synthetic, in the documented shape) as the OpenReview source reads it."""
    content = {
        "title": {"value": title},
        "authors": {"value": ["Kaiyang Zhou", "Jingkang Yang", "Chen Change Loy", "Ziwei Liu"]},
        "abstract": {"value": "We learn a lightweight network that conditions prompts on each image."},
        "venueid": {"value": venueid},
    }
    note = {"id": forum, "forum": forum, "content": content, "cdate": 1_700_000_000_000, "tmdate": mdate}
    record = note_record(note, venue)
    assert record is not None
    return record


ICLR_ALL = OpenReviewVenue(venue_id="ICLR.cc/2025/Conference/-/Submission", name="ICLR", year=2025)
NEURIPS = OpenReviewVenue(venue_id="NeurIPS.cc/2025/Conference", name="NeurIPS", year=2025)


@pytest.mark.parametrize("fate", ["Rejected_Submission", "Withdrawn_Submission", "Desk_Rejected_Submission"])
def test_a_paper_rejected_at_one_venue_is_upgraded_by_its_acceptance_at_another(
    engine: Engine, fate: str
) -> None:
    # A rejected (or withdrawn) submission is resubmitted elsewhere under a new forum id. The
    # rejected note gave the preprint its forum id, and two forum ids "proved" two papers: the
    # accepted version became a second paper and the preprint stayed "arXiv".
    title = "Conditional Prompt Learning for Vision-Language Models"
    preprint = RawRecord(
        source="arxiv_api",
        source_id="2203.05557v1",
        title=title,
        authors=("Kaiyang Zhou", "Jingkang Yang", "Chen Change Loy", "Ziwei Liu"),
        arxiv_id="2203.05557",
        venue="arXiv",
    )
    rejected = _note("rejectedF1", title, f"ICLR.cc/2025/Conference/{fate}", ICLR_ALL)
    accepted = _note("acceptedF1", title.replace(" for ", " of "), "NeurIPS.cc/2025/Conference", NEURIPS)
    assert rejected.venue is None and accepted.venue == "NeurIPS"
    stats = ingest_records(engine, [preprint, rejected, accepted])
    assert (stats.new_papers, stats.merged, stats.upgraded) == (1, 2, 1)
    # Later sightings of both notes (edited: new payloads) find the same paper.
    again = [
        _note("rejectedF1", title, f"ICLR.cc/2025/Conference/{fate}", ICLR_ALL, mdate=2),
        _note("acceptedF1", title.replace(" for ", " of "), "NeurIPS.cc/2025/Conference", NEURIPS, mdate=2),
    ]
    stats = ingest_records(engine, again)
    assert (stats.new_papers, stats.merged, stats.new_sightings) == (0, 2, 2)
    with transaction(engine) as session:
        (paper,) = session.scalars(select(PaperRow)).all()
    assert (paper.venue, paper.year, paper.previous_venue) == ("NeurIPS", 2025, "arXiv")
    assert (paper.arxiv_id, paper.openreview_id) == ("2203.05557", "acceptedF1")


def test_a_submission_seen_under_review_and_then_rejected_releases_its_forum(engine: Engine) -> None:
    # Under review, the submission's forum is a key (it is accepted under the same one), and
    # the preprint took it. Once rejected, it is no key any more: it made the paper's accepted
    # resubmission (another forum) a second paper again.
    title = "Conditional Prompt Learning for Vision-Language Models"
    preprint = RawRecord(
        source="arxiv_api",
        source_id="2203.05557v1",
        title=title,
        authors=("Kaiyang Zhou", "Jingkang Yang", "Chen Change Loy", "Ziwei Liu"),
        arxiv_id="2203.05557",
        venue="arXiv",
    )
    under_review = _note("reviewedF1", title, "ICLR.cc/2025/Conference/Submission", ICLR_ALL)
    assert under_review.decision == "submitted"
    stats = ingest_records(engine, [preprint, under_review])
    assert (stats.new_papers, stats.merged) == (1, 1)
    assert stored_keys(engine) == [("2203.05557", "reviewedF1", "arXiv")]
    rejected = _note("reviewedF1", title, "ICLR.cc/2025/Conference/Rejected_Submission", ICLR_ALL, mdate=2)
    stats = ingest_records(engine, [rejected])
    assert (stats.new_papers, stats.merged) == (0, 1)
    assert stored_keys(engine) == [("2203.05557", None, "arXiv")]
    accepted = _note("acceptedF1", title.replace(" for ", " of "), "NeurIPS.cc/2025/Conference", NEURIPS)
    again = _note(
        "acceptedF1", title.replace(" for ", " of "), "NeurIPS.cc/2025/Conference", NEURIPS, mdate=2
    )
    stats = ingest_records(engine, [accepted, again])
    assert (stats.new_papers, stats.merged, stats.upgraded) == (0, 2, 1)
    assert stored_keys(engine) == [("2203.05557", "acceptedF1", "NeurIPS")]


def stored_keys(engine: Engine) -> list[tuple[str | None, str | None, str | None]]:
    with transaction(engine) as session:
        rows = session.scalars(select(PaperRow).order_by(PaperRow.id))
        return [(row.arxiv_id, row.openreview_id, row.venue) for row in rows]


def test_a_venue_given_with_a_rejection_upgrades_nothing(engine: Engine) -> None:
    preprint = RawRecord(source="arxiv_api", source_id="2203.05557v1", title="CoCoOp", arxiv_id="2203.05557")
    for fate in ("rejected", "withdrawn", "desk-rejected"):
        refused = RawRecord(
            source="x", source_id=fate, title="CoCoOp", venue="ICLR", year=2025, decision=fate
        )
        stats = ingest_records(engine, [preprint, refused])
        assert stats.upgraded == 0
    assert stored(engine) == [("CoCoOp", "arXiv", 2022)]


def test_a_tiny_paper_does_not_upgrade_a_preprint_to_the_main_conference(engine: Engine) -> None:
    title = "Can Conformal Prediction Obtain Meaningful Safety Guarantees for ML Models?"
    (tiny,) = read_conference_index(NEAR / "ICLR2023.json")
    assert tiny.payload == {"volume": "tiny"} and tiny.venue == "ICLR Tiny Papers"
    preprint = RawRecord(source="arxiv_api", source_id="2303.00001", title=title, arxiv_id="2303.00001")
    ingest_records(engine, [preprint, tiny])
    assert stored(engine) == [(title, "ICLR Tiny Papers", 2023)]


@pytest.mark.parametrize(
    ("venue", "preprint"),
    [
        (None, True),
        ("  ", True),
        ("arXiv", True),
        ("arXiv 2024", True),
        ("arXiv preprint arXiv:2401.00001", True),
        ("CoRR abs/2401.00001", True),
        ("Openreview", True),  # synbol's list: "Important Channel Tuning, Openreview 2023"
        ("Tech Report", True),
        ("Under review at ICLR 2025", True),
        ("CVPR", False),
        ("ICLR 2024", False),
        ("ICLR Tiny Papers", False),
        ("NeurIPS Workshop", False),
    ],
)
def test_preprint_venues(venue: str | None, preprint: bool) -> None:
    assert normalize.is_preprint_venue(venue) is preprint


def test_a_venue_that_is_no_venue_is_still_upgraded(engine: Engine) -> None:
    title = "Important Channel Tuning"
    listed = RawRecord(source="catalogue", source_id="1", title=title, venue="Openreview", year=2023)
    cvpr = RawRecord(source="cvf", source_id="2", title=title, venue="CVPR", year=2024)
    stats = ingest_records(engine, [listed, cvpr])
    assert stats.upgraded == 1 and stored(engine) == [(title, "CVPR", 2024)]


def test_a_merge_that_brings_an_arxiv_id_brings_its_year_and_venue(engine: Engine) -> None:
    title = "Visual Prompt Tuning for Frozen Point Cloud Encoders"
    untitled = RawRecord(source="corpus", source_id="1", title=title)
    with_id = RawRecord(source="corpus", source_id="2", title=title, arxiv_id="2402.11111")
    ingest_records(engine, [untitled, with_id])
    assert stored(engine) == [(title, "arXiv", 2024)]


@pytest.mark.parametrize(
    ("bad", "clean"),
    [
        ("\x00", ""),
        ("\ud83d", "\ufffd"),
        ("\x00\ud83d", "\ufffd"),
        ("\x1b]0;pwned\x07\x1b[2J", "]0;pwned[2J"),
        ("\x7f\x9b", ""),
    ],
    ids=["nul", "lone surrogate", "both", "terminal escapes", "del and c1"],
)
def test_nul_characters_and_lone_surrogates_are_stored_cleaned(engine: Engine, bad: str, clean: str) -> None:
    # Valid JSON can carry both ("\\u0000", and "\\ud83d" from a truncated emoji); PostgreSQL
    # refuses a NUL in text and JSON, and a lone surrogate is not UTF-8 anywhere. An ESC
    # sequence in a title would be printed to the maintainer's terminal (set its title, clear
    # it) by every command that shows the paper.
    record = RawRecord(
        source="corpus",
        source_id="1",
        title=f"Prompting {bad} CLIP",
        abstract=f"We tune{bad} prompts.",
        authors=(f"A {bad} Author",),
        payload={"note": f"a{bad}b", "list": [bad]},
    )
    stats = ingest_records(engine, [record])
    again = ingest_records(engine, [record])
    assert (stats.new_papers, again.new_sightings) == (1, 0)  # and the cleaned form is idempotent
    with transaction(engine) as session:
        paper = session.scalars(select(PaperRow)).one()
        sighting = session.scalars(select(SightingRow)).one()
        assert (paper.title, paper.abstract, paper.authors) == (
            f"Prompting {clean} CLIP",
            f"We tune{clean} prompts.",
            [f"A {clean} Author"],
        )
        assert sighting.payload["payload"] == {"note": f"a{clean}b", "list": [clean]}


@pytest.mark.parametrize(
    ("spellings", "key"),
    [
        ((r"$\epsilon$-VAE", "ϵ-VAE", "ε-VAE"), "epsilon vae"),  # LaTeX renders \epsilon as ϵ
        ((r"$\phi$-Net", "ϕ-Net", "φ-Net"), "phi net"),
        ((r"$\mu$P Transfer", "µP Transfer"), "mu p transfer"),  # µ: the micro sign
        (("ά-Prompts", "α-Prompts"), "alpha prompts"),
        (("Søgaard", "Sogaard"), "sogaard"),
        (("Łukasik", "Lukasik"), "lukasik"),
        (("Straße", "Strasse"), "strasse"),
        (("Cœur", "Coeur"), "coeur"),
        # The LaTeX of these letters, as arXiv's RSS feeds write authors ("Andreas M{\\o}gelmose",
        # "Antoine {\\L}ucas"): the command was dropped, and "Møgelmose" folded to "m gelmose".
        ((r"M{\o}gelmose", "Møgelmose", "Mogelmose"), "mogelmose"),
        ((r"{\L}ucas", "Łucas", "Lucas"), "lucas"),
        ((r"Stra{\ss}e", r"Stra\ss e", "Straße"), "strasse"),
        ((r"{\AA}str{\"o}m", r"\AA str\"om", "Åström"), "astrom"),
        ((r"C{\oe}ur", "Cœur"), "coeur"),
        ((r"{\AE}sop", "Æsop"), "aesop"),
    ],
)
def test_letters_fold_to_their_usual_spelling(spellings: tuple[str, ...], key: str) -> None:
    assert {normalize.title_key(spelling) for spelling in spellings} == {key}


@pytest.mark.parametrize(
    ("spellings", "key"),
    [
        # Super- and subscript markers fold away; the script stays in its word, as "E²VPT" does.
        (("E^2VPT", "E$^{2}$VPT", "E$^2$VPT", "E{^2}VPT", "E²VPT", "E2VPT"), "e2vpt"),
        ((r"H$_{2}$OT", "H_{2}OT", "H₂OT", "H2OT"), "h2ot"),
        ((r"$L_2$-Heavy Hitters", "L_2-Heavy Hitters", "L2-Heavy Hitters"), "l2 heavy hitters"),
        ((r"x_{\text{adv}}", r"x_{adv}", "xadv"), "xadv"),
        ((r"N$\text{A}^{\text{2}}$Q", "NA$^2$Q", "NA2Q"), "na2q"),  # a command before a group
        ((r"$\mathcal{B}^{3}$-Net", "B^3-Net", "B3-Net"), "b3 net"),
        ((r"Demoir$\acute{e}$ing", "Demoiréing"), "demoireing"),
        # `\ell` is "l", as "ℓ" is (ICML 2023's "Sharper Bounds for $\ell_p$ Sensitivity
        # Sampling" was "sharper bounds for p …", its "ℓp" spelling "… lp …").
        (
            (
                r"Sharper Bounds for $\ell_p$ Sensitivity Sampling",
                "Sharper Bounds for ℓp Sensitivity Sampling",
                "Sharper Bounds for $l_p$ Sensitivity Sampling",
            ),
            "sharper bounds for lp sensitivity sampling",
        ),
        ((r"$\ell_{1}$-Regularized", r"$\ell_1$-Regularized", "ℓ1-Regularized"), "l1 regularized"),
        ((r"via $\ell^4$-Norm", "via ℓ4-Norm", "via ℓ⁴-Norm"), "via l4 norm"),
        # "+" after a word or a script is the word "plus" (arXiv 2603.04128 writes "Crab$^{+}$").
        (
            (r"Crab$^{+}$: A Scalable Model", "Crab+: A Scalable Model", "Crab^+: A Scalable Model"),
            "crab plus a scalable model",
        ),
        # A subscript without braces is one character, a digit too: "H_2O" was "h 2o".
        (
            ("H_2O: Heavy-Hitter Oracle", "H$_2$O: Heavy-Hitter Oracle", "H₂O: Heavy-Hitter Oracle"),
            "h2o heavy hitter oracle",
        ),
        # An identifier's underscore separates words, as before: no word is made or lost.
        (("ReCOGS_pos", "ReCOGS pos", r"ReCOGS\_pos"), "recogs pos"),
        (("sudo rm -rf agentic_security", "Sudo rm -rf: agentic security"), "sudo rm rf agentic security"),
    ],
)
def test_script_markers_fold_away(spellings: tuple[str, ...], key: str) -> None:
    # "E^2VPT" folded to "e 2vpt" and "E2VPT" to "e2vpt": a list entry of the one spelling did
    # not find the paper of the other, and neither did a same-titled record at another venue.
    assert {normalize.title_key(spelling): spelling for spelling in spellings}.keys() == {key}


@pytest.mark.parametrize(
    "pair",
    [
        ("E^2VPT", "E^3VPT"),
        ("$L_1$ Regularization", "$L_2$ Regularization"),
        (r"$x_{\text{a}}$ attacks", r"$x_{\text{b}}$ attacks"),
        ("Task_A Transfer", "Task_B Transfer"),
        ("ReCOGS_pos", "ReCOGSpos"),  # an identifier's underscore is not a subscript
        ("O_FT@EvalLLM2025", "OFT@EvalLLM2025"),
        ("Results_2023 Report", "Results2023 Report"),  # before more than one digit, too
        # "+" after a word is a word: an extended version ("EvTexture++", arXiv 2606.13580).
        (
            "EvTexture++: Event-Driven Texture Enhancement for Video Super-Resolution",
            "EvTexture: Event-driven Texture Enhancement for Video Super-Resolution",
        ),
    ],
)
def test_titles_whose_words_differ_still_differ_with_script_markers(pair: tuple[str, str]) -> None:
    assert normalize.title_key(pair[0]) != normalize.title_key(pair[1])


def test_a_journal_version_written_without_the_superscript_is_the_paper(engine: Engine) -> None:
    # An identical title is the paper itself, whatever the venues say; "E2VPT: …" (as lists
    # and journals write it) was not identical to CVF's "E^2VPT: …", and at another venue it
    # stayed a second paper.
    iccv = e2vpt.at_iccv()
    journal = e2vpt.journal_version(iccv)
    stats = ingest_records(engine, [iccv, journal])
    assert (stats.new_papers, stats.merged) == (1, 1)
    assert stored(engine) == [(iccv.title, "ICCV", 2023)]


def test_a_title_written_with_a_greek_symbol_form_is_the_latex_one(engine: Engine) -> None:
    title = "Denoising as Visual Decoding"
    preprint = RawRecord(
        source="arxiv_api", source_id="2410.04081", title=rf"$\epsilon$-VAE: {title}", arxiv_id="2410.04081"
    )
    icml = RawRecord(source="openreview", source_id="1", title=f"ϵ-VAE: {title}", venue="ICML", year=2025)
    stats = ingest_records(engine, [preprint, icml])
    assert (stats.new_papers, stats.upgraded) == (1, 1)


def test_an_author_written_in_latex_is_the_author_written_in_unicode(engine: Engine) -> None:
    # arXiv's RSS feeds give authors in LaTeX, CVF and OpenReview in Unicode. "M{\\o}gelmose"
    # had the surname "gelmose", which no other source's author list shares, so a venue
    # sighting of the same title stayed a paper of its own.
    title = "Learning to Find Missing Video Frames with Synthetic Data Augmentation"
    preprint = RawRecord(
        source="arxiv_rss",
        source_id="2403.00196v1",
        title=title,
        authors=(r"Andreas M{\o}gelmose",),
        arxiv_id="2403.00196",
    )
    venue = RawRecord(
        source="y", source_id="1", title=title, authors=("Andreas Møgelmose",), venue="IV", year=2024
    )
    stats = ingest_records(engine, [preprint, venue])
    assert (stats.new_papers, stats.merged, stats.upgraded) == (1, 1, 1)


@pytest.mark.parametrize(
    ("spellings", "surname", "initial"),
    [
        (
            (
                "Marcelo H. Ang Jr.",
                "Marcelo H. Ang, Jr.",
                "Marcelo H. Ang",
                "Ang, Marcelo H.",
                "Ang Jr., Marcelo H.",
            ),
            "ang",
            "m",
        ),
        (("Hal Daumé III", "Hal Daume", "Daumé III, Hal"), "daume", "h"),
        (("Kenneth A. Weber II", "Kenneth A. Weber"), "weber", "k"),
    ],
)
def test_a_generational_suffix_is_not_the_surname(
    spellings: tuple[str, ...], surname: str, initial: str
) -> None:
    # "Hal Daumé III" had the surname "iii" and "Marcelo H. Ang, Jr." the surname
    # "marcelohang" and the initial "j": the same author, written with or without the suffix,
    # shared nothing, and people with a suffix shared a surname.
    for spelling in spellings:
        assert author_fields([spelling]) == ((surname,), (initial,)), spelling


def test_an_author_written_with_and_without_jr_is_one_author(engine: Engine) -> None:
    title = (
        "Reasoning and Learning a Perceptual Metric for Self-Training of Reflective Objects in "
        "Bin-Picking with a Low-cost Camera"
    )
    preprint = RawRecord(source="jsonl", source_id="2503.20207", title=title, authors=("Marcelo H. Ang Jr.",))
    venue = RawRecord(
        source="y", source_id="1", title=title, authors=("Marcelo H. Ang",), venue="ICRA", year=2025
    )
    stats = ingest_records(engine, [preprint, venue])
    assert (stats.new_papers, stats.merged, stats.upgraded) == (1, 1, 1)


NUMBERED = {  # real arXiv titles that differ only in a version number or a year
    "model version": ("2503.20215", "2604.15804"),  # Qwen2.5-Omni / Qwen3.5-Omni Technical Report
    "edition year": ("2507.13275", "2606.31692"),  # Overview of the TalentCLEF 2025 / 2026: ...
}


@pytest.mark.parametrize("pair", list(NUMBERED), ids=list(NUMBERED))
def test_titles_whose_numbers_differ_are_two_papers(engine: Engine, pair: str) -> None:
    # A record with no authors (a list row, an OpenReview note without them) merged at 96 %
    # title similarity; these pairs are 96.6 and 98.9 % alike. A different number in the
    # title (a version, a year, a digit in a model's name) is a different paper.
    by_id = {r.arxiv_id: r for r in read_corpus_jsonl(NEAR / "numbered.jsonl")}
    known, other = (by_id[arxiv] for arxiv in NUMBERED[pair])
    title_only = RawRecord(source="y", source_id="1", title=other.title)  # no keys, no authors
    assert fuzz.ratio(normalize.title_key(known.title), normalize.title_key(other.title)) >= 96
    stats = ingest_records(engine, [known, title_only])
    assert (stats.new_papers, stats.merged) == (2, 0)
    assert sorted(title for title, _venue, _year in stored(engine)) == sorted([known.title, other.title])


EVTEXTURE_ICML = RawRecord(  # hand-written: ICML 2024's title and authors, as its index gives them
    source="conference-index",
    source_id="https://proceedings.mlr.press/v235/kai24a.html",
    title="EvTexture: Event-driven Texture Enhancement for Video Super-Resolution",
    authors=("Dachun Kai", "Jiayao Lu", "Yueyi Zhang", "Xiaoyan Sun"),
    venue="ICML",
    year=2024,
)


@pytest.mark.parametrize("authors", [True, False], ids=["with authors", "title only"])
@pytest.mark.parametrize("reverse", [False, True], ids=["in order", "reversed"])
def test_an_extended_version_marked_plus_is_not_the_paper_it_extends(
    engine: Engine, reverse: bool, authors: bool
) -> None:
    # arXiv 2606.13580, "EvTexture++: …" (TPAMI 2026, "Extended version of arXiv:2406.13457 (ICML
    # 2024)"), by the same four authors. "++" folded away: both titles had one key, an identical
    # title merges whatever the venues say, and the ICML paper (no arXiv id in a conference
    # index) became a sighting of its extension, which it "upgraded" to ICML 2024.
    (extension,) = read_corpus_jsonl(NEAR / "extended.jsonl")
    icml = EVTEXTURE_ICML if authors else replace(EVTEXTURE_ICML, authors=())
    records = [icml, extension] if reverse else [extension, icml]
    stats = ingest_records(engine, records)
    assert (stats.new_papers, stats.merged) == (2, 0)
    assert stored(engine) == [(extension.title, "arXiv", 2026), (icml.title, "ICML", 2024)]


def test_an_extended_version_without_keys_or_venue_is_not_the_paper_it_extends(engine: Engine) -> None:
    # The extension as a record with only its title and authors (92 % alike, one author in
    # common, nothing published apart): its "plus" is a mark of a version, as a number is.
    (extension,) = read_corpus_jsonl(NEAR / "extended.jsonl")
    bare = RawRecord(source="y", source_id="1", title=extension.title, authors=extension.authors)
    stats = ingest_records(engine, [EVTEXTURE_ICML, bare])
    assert (stats.new_papers, stats.merged) == (2, 0)


def test_a_title_with_the_same_numbers_still_merges_without_authors(engine: Engine) -> None:
    (known, *_rest) = read_corpus_jsonl(NEAR / "numbered.jsonl")
    spelled = RawRecord(source="y", source_id="1", title="Qwen 2.5-Omni: Technical Report")
    stats = ingest_records(engine, [known, spelled])
    assert (stats.new_papers, stats.merged) == (1, 1)
