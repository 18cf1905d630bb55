"""Normalisation of identifiers and titles.

Every layer that compares papers (ingestion, catalogue import, the classifier's training
set builder) must agree on what "the same arXiv id" or "the same title" means, so the
rules live here once.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

_ARXIV_NEW = re.compile(r"(?<![\d.])(\d{4}\.\d{4,5})(v\d+)?(?![\d])")
_ARXIV_OLD = re.compile(r"([a-z\-]{2,16}(?:\.[A-Z]{2})?/\d{7})(v\d+)?", re.IGNORECASE)
_ARXIV_URL = re.compile(
    r"arxiv\.org/(?:abs|pdf|html)/([a-z\-]{2,16}(?:\.[A-Z]{2})?/\d{7}|\d{4}\.\d{4,5})(v\d+)?", re.IGNORECASE
)

# A letter accent (\c, \v, \t, ...) is a command only when no letter follows: `\textbf` is not `\t`.
_LATEX_ACCENTS = re.compile(r"\\(?:[`'^\"~=.]|[uvHckbdrt](?![a-zA-Z]))\s*\{?\s*([A-Za-z])(?:\s*\})?")
_LATEX_DOTLESS = re.compile(r"\\([ij])(?![a-zA-Z])")  # \i, \j: the dotless i and j under accents
# The letters LaTeX writes as commands (arXiv's RSS authors: "Andreas M{\\o}gelmose", "{\\L}ucas"),
# in the spelling `_LATIN_LETTERS` gives their Unicode forms; dropped as commands, "Møgelmose"
# folded to "m gelmose" and shared no surname with the same author written in Unicode. `\\ell` is
# "l", as its Unicode form "ℓ" is: dropped, "$\\ell_p$ Sensitivity Sampling" (ICML 2023) was
# "p sensitivity sampling" and "ℓp Sensitivity Sampling" "lp sensitivity sampling".
_LATEX_LETTERS = re.compile(r"\\(ss|aa|AA|ae|AE|oe|OE|ell|o|O|l|L)(?![a-zA-Z])\s*")
_LATEX_LETTER_SPELLING = {"aa": "a", "AA": "A", "ell": "l"}
_GREEK_NAMES = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi pi rho sigma tau upsilon "
    "phi chi psi omega"
)
# `$\alpha$` and `α` both fold to "alpha": titles spell Greek letters either way.
_LATEX_GREEK = re.compile(r"\\(?:var)?(" + _GREEK_NAMES.replace(" ", "|") + r")(?![a-zA-Z])", re.IGNORECASE)
_LATEX_MARKUP = re.compile(r"[\\${}]")
_GREEK_LETTER = re.compile("[\u0370-\u03ff]")
# A command before a group (`\text{x}`, `\mathcal{B}`) is the group's letters, in the word it
# stands in ("N$\text{A}^{\text{2}}$Q" is "NA2Q"); any other command is dropped as a word break.
_LATEX_GROUP_COMMAND = re.compile(r"\\[a-zA-Z]+\*?\s*(?=\{)")
_LATEX_COMMAND = re.compile(r"\\[a-zA-Z]+\*?\s*")
# Super- and subscript markers fold away and the script stays in its word: "E^2VPT",
# "E$^{2}$VPT" and "E2VPT" are one title (as "E²VPT" is), "H$_{2}$OT" is "H2OT" and "$L_2$" is
# "L2". `^` is never text in a title. `_` is a subscript before a group (`_{2}`, `_{\text{x}}`),
# one character (`V_1`, `L_2-norm`, `x_t`) or one digit (`H_2O`, `CO_2`: as in LaTeX, the
# subscript is one character; "H_2O" was "h 2o" where "H$_2$O" and "H₂O" are "h2o"); before
# more, it is an identifier's underscore ("ReCOGS_pos", "agentic_security", "results_2023"),
# which separates words as any punctuation does.
_SCRIPT_MARKER = re.compile(r"\^|_(?=\s*\{|\d(?!\d)|[^\W_](?![^\W_]))")
_NON_WORD = re.compile(r"[^0-9a-z]+")
# A "+" right after a word or a script ("MMVAE+", "EvTexture++", "Crab$^{+}$") marks an
# extended version, and is a word of the title ("plus" each): dropped as punctuation,
# "EvTexture++: Event-Driven Texture Enhancement for Video Super-Resolution" (arXiv 2606.13580,
# TPAMI 2026) had the key of the paper it extends, ICML 2024's "EvTexture: …", and an identical
# title merges whatever the venues say. Elsewhere ("Submodular + Concave") it is punctuation.
_PLUS_SUFFIX = re.compile(r"(?<=[^\W_])\++")


def _plus_words(text: str) -> str:
    return _PLUS_SUFFIX.sub(lambda m: " plus" * len(m.group()) + " ", text) if "+" in text else text


# The DOI arXiv registers for each entry (`10.48550/arXiv.2203.05557`, on its abstract page).
_ARXIV_DOI = re.compile(r"10\.48550/arxiv\.(\S+)", re.IGNORECASE)
# The subject class of an old-style id ("math.GT/0309136") is not part of the id.
_SUBJECT_CLASS = re.compile(r"^([a-z\-]+)\.[a-z]{2}/", re.IGNORECASE)


def arxiv_id(value: str | None) -> str | None:
    """The versionless arXiv id found in an id, an abs/pdf URL, an `arXiv:` string or
    arXiv's own DOI (`10.48550/arXiv.<id>`); an old-style id without its subject class."""
    if not value:
        return None
    text = value.strip()
    url = _ARXIV_URL.search(text)
    if url:
        return _SUBJECT_CLASS.sub(r"\1/", url.group(1))
    registered = _ARXIV_DOI.search(text)
    if registered:
        text = registered.group(1)
    text = re.sub(r"^(?:arxiv:|oai:arxiv\.org:)", "", text, flags=re.IGNORECASE)
    match = _ARXIV_NEW.search(text)
    if match:
        return match.group(1)
    old = _ARXIV_OLD.fullmatch(text)
    if old:
        return _SUBJECT_CLASS.sub(r"\1/", old.group(1))
    return None


def is_arxiv_doi(value: str | None) -> bool:
    """True for arXiv's DOI of an entry (in any spelling): it names the arXiv id, not a DOI key."""
    return bool(value and _ARXIV_DOI.search(value))


def arxiv_version(value: str | None) -> int | None:
    """The version number in `2401.01234v3`, or None."""
    if not value:
        return None
    match = re.search(r"v(\d+)$", value.strip())
    return int(match.group(1)) if match else None


def doi(value: str | None) -> str | None:
    """A lower-cased bare DOI (`10.x/y`), from a DOI, a `doi:` string or a doi.org URL;
    None for arXiv's DOI of an entry (`10.48550/arXiv.…`), which `arxiv_id` reads.

    A field that holds several (arXiv's `10.1109/JSTARS.2024.3413003 10.1109/JSTARS...`,
    "10.1/a, 10.1/b") gives its first: a DOI holds no white space, and the whole field was
    a key no other record of the paper had.
    """
    if not value:
        return None
    text = value.strip()
    text = re.sub(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", "", text, flags=re.IGNORECASE)
    text = text.split(maxsplit=1)[0].rstrip(",;") if text else text
    if not text.startswith("10.") or len(text) > DOI_MAX or is_arxiv_doi(text):
        return None  # arXiv's DOI of an entry is its arXiv id (`arxiv_id`), not a DOI key
    return text.lower()


def fold_text(text: str) -> str:
    """Fold LaTeX accents and commands, Unicode accents, case and punctuation.

    `Fran\\c{c}ois`, `François` and `FRANCOIS` all fold to `francois`.
    """
    if text.isascii() and not _LATEX_MARKUP.search(text):
        # Most titles and names: nothing to fold but case and punctuation (a bulk load's hot path).
        if "^" in text or "_" in text:
            text = _SCRIPT_MARKER.sub("", text)
        return _NON_WORD.sub(" ", _plus_words(text).lower()).strip()
    text = _LATEX_DOTLESS.sub(r"\1", text)
    text = _LATEX_LETTERS.sub(lambda m: _LATEX_LETTER_SPELLING.get(m.group(1), m.group(1)), text)
    text = _LATEX_ACCENTS.sub(r"\1", text)
    text = _LATEX_GREEK.sub(lambda m: f" {m.group(1).lower()} ", text)
    text = _LATEX_GROUP_COMMAND.sub("", text)
    text = _LATEX_COMMAND.sub(" ", text)
    text = _SCRIPT_MARKER.sub("", text)  # after the commands: `$\max_k$` is "k", not a command `\maxk`
    text = text.replace("$", "").replace("{", "").replace("}", "")  # E$^{2}$VPT is E2VPT
    # Decomposed first, so that "ά" is "α" and the symbol forms LaTeX renders (ϵ, ϕ, µ) are
    # the letters (ε, φ, μ) before Greek letters become their names.
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _GREEK_LETTER.sub(lambda m: _greek_name(m.group()), text)
    text = _plus_words(text.translate(_LATIN_LETTERS)).lower()
    return _NON_WORD.sub(" ", text).strip()


# Latin letters that have no decomposition, in their usual ASCII spelling: without them
# "Søgaard" folded to "s gaard" and "Straße" to "stra e".
_LATIN_LETTERS = str.maketrans(
    {
        "ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ð": "d", "Ð": "D",
        "þ": "th", "Þ": "Th", "ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE",
        "ı": "i", "ħ": "h", "Ħ": "H", "ŋ": "ng", "Ŋ": "NG",
    }
)  # fmt: skip


def _greek_name(char: str) -> str:
    """`α` -> " alpha ": the letter's Unicode name, as LaTeX would spell it."""
    name = unicodedata.name(char, "")
    if "GREEK" in name and "LETTER" in name:
        return f" {name.split()[-1].lower()} "
    return char


def title_key(title: str) -> str:
    """The folded title with single spaces: the exact-match key for titles."""
    return " ".join(fold_text(title).split())


# A generational suffix ("Marcelo H. Ang Jr.", "Hal Daumé III", "Ang, Jr."): not a surname.
_NAME_SUFFIX = re.compile(r"(?:,?\s+(?:jr|sr|ii|iii|iv)\.?)+$", re.IGNORECASE)
_SUFFIX_ONLY = re.compile(r"(?:jr|sr|ii|iii|iv)\.?", re.IGNORECASE)


def without_suffix(name: str) -> str:
    """`name` without its generational suffix, in the spelling it came in ("Last, First" or
    "First Last"): "Hal Daumé III" had the surname "iii", and "Marcelo H. Ang, Jr." the
    surname "marcelohang" and the given name "Jr.", so the author matched no other spelling."""
    name = " ".join(name.split())
    if "," in name:
        surname, _, given = name.partition(",")
        given = given.strip()
        if _SUFFIX_ONLY.fullmatch(given):  # "Marcelo H. Ang, Jr.": First Last, then the suffix
            return _NAME_SUFFIX.sub("", surname).strip() or surname
        return f"{_NAME_SUFFIX.sub('', surname).strip() or surname}, {given}"
    return _NAME_SUFFIX.sub("", name).strip() or name


def author_key(name: str) -> str:
    """The folded surname of an author ("Last, First" or "First Last"), without a suffix."""
    name = without_suffix(name)
    if "," in name:
        surname = name.split(",", 1)[0]
    else:
        parts = fold_text(name).split()
        return parts[-1] if parts else ""
    return fold_text(surname).replace(" ", "")


def first_author_key(authors: list[str] | tuple[str, ...]) -> str:
    return author_key(authors[0]) if authors else ""


# The first folded word of a venue text that means "not published at a venue yet". OpenReview
# hosts submissions: a list that says "Openreview 2023" means "submitted somewhere", and a later
# CVPR sighting must still upgrade the paper.
_PREPRINT_WORDS = frozenset({"arxiv", "corr", "preprint", "openreview", "biorxiv", "medrxiv", "ssrn"})
_PREPRINT_PHRASES = ("tech report", "technical report", "under review", "in submission", "submitted to")


def is_preprint_venue(venue: str | None) -> bool:
    """True for no venue, and for "arXiv", "arXiv 2024", "CoRR abs/...", "OpenReview",
    "under review" and the like: a paper with such a venue may still be upgraded.

    One rule for ingestion (which venue sighting upgrades a paper) and for the catalogue
    (which entry a venue upgrade rewrites), so that the two never disagree.
    """
    words = title_key(venue or "")
    if not words:
        return True
    return words.split()[0] in _PREPRINT_WORDS or any(phrase in words for phrase in _PREPRINT_PHRASES)


# The longest identifier of each kind that is kept, and the size of its column: longer than
# any real one (DOIs run to ~100 characters, OpenReview ids to 10-20, CVF page URLs to ~200,
# arXiv categories to 18), so a longer value is a broken payload, not a key to match on.
DOI_MAX = 255
OPENREVIEW_ID_MAX = 64
CVF_URL_MAX = 512
CATEGORY_MAX = 32

_OPENREVIEW_URL = re.compile(
    r"openreview\.net/(?:forum|pdf)\?(?:[^#]*&)?id=([A-Za-z0-9_\-]{1,64})(?![A-Za-z0-9_\-])", re.IGNORECASE
)
_OPENREVIEW_ID = re.compile(r"[A-Za-z0-9_\-]{6,64}")
_CATEGORY = re.compile(r"[a-z][a-z-]*(?:\.[A-Za-z][A-Za-z-]*)?")


def openreview_id(value: str | None) -> str | None:
    """The forum id from an OpenReview forum/pdf URL or a bare id (ids are case-sensitive)."""
    if not value:
        return None
    text = value.strip()
    url = _OPENREVIEW_URL.search(text)
    if url:
        return url.group(1)
    if "/" in text or ":" in text:
        return None
    return text if _OPENREVIEW_ID.fullmatch(text) else None


_CVF_PDF = re.compile(r"/papers/([^/]+)_paper\.pdf$")


def cvf_url(value: str | None) -> str | None:
    """A CVF open-access page URL in one spelling: https, lower-case host, no query or fragment.

    The listing links pages as relative or `http://` URLs; without one spelling, the same
    paper would get two CVF keys.
    """
    if not value:
        return None
    text = value.strip().split("#", 1)[0].split("?", 1)[0]
    match = re.match(r"^(?:https?://)?(?:www\.)?openaccess\.thecvf\.com(/.*)$", text, re.IGNORECASE)
    if match:
        path = match.group(1)
    elif text.startswith("/content"):
        path = text
    else:
        return None
    # A paper's PDF (`.../papers/X_paper.pdf`) stands for its page (`.../html/X_paper.html`).
    path = _CVF_PDF.sub(r"/html/\1_paper.html", path.rstrip("/"))
    url = "https://openaccess.thecvf.com" + path
    return url if len(url) <= CVF_URL_MAX else None


def arxiv_category(value: str | None) -> str | None:
    """An arXiv category ("cs.CV", "eess.IV", "hep-th") as given, or None for anything else."""
    text = (value or "").strip()
    return text if len(text) <= CATEGORY_MAX and _CATEGORY.fullmatch(text) else None


def doi_url(doi: str) -> str:
    """The doi.org link of a DOI, its URL characters percent-encoded.

    Older DOIs (Wiley's SICI ones, `10.1002/(sici)...49:8<693::aid-asi4>3.0.co;2-o`) hold
    `<`, `>`, `#` or `?`: written as is, `#` cuts the DOI off as a fragment and `?` as a
    query, and `>` ends a link enclosed in `<...>`. Parentheses are encoded too: a markdown
    link `[title](url)` ends at the first `)`, and `web_url` refuses them, so a list got no
    link for such a paper at all. Everything but `/` is encoded, so that no part of a hostile
    DOI field (`x) [a](javascript:…`) reads as a scheme. doi.org decodes the encoded form.
    """
    return "https://doi.org/" + quote(doi, safe="/")


def web_url(url: str | None) -> str | None:
    """`url` if it is a plain http(s) address; sources are untrusted, and a list must never
    get a `javascript:` or `data:` link."""
    if url and re.fullmatch(r"https?://[^\s<>()\[\]\"'`]+", url.strip(), re.IGNORECASE):
        return url.strip()
    return None
