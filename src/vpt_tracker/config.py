"""Configuration: `vpt-tracker.toml` plus `VPT_*` environment variables.

Precedence, highest first: explicit overrides (CLI flags), environment variables
(`VPT_DATABASE_URL`, nested keys with `__`, e.g. `VPT_SMTP__HOST`), the secrets file,
the TOML file, defaults. Secrets are `SecretStr`, so that printing or logging the
config never shows them. A variable is read in any case, and an empty one is unset; a
relative path in a file is relative to that file's folder.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import tzinfo
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from platformdirs import user_data_dir
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from vpt_tracker.classify.presets import Presets, clash_message
from vpt_tracker.classify.rules import RuleSet
from vpt_tracker.errors import UserError
from vpt_tracker.models import check_branch_name, check_catalogue_name, check_github_repo, check_readme_path
from vpt_tracker.normalize import arxiv_category

CONFIG_ENV = "VPT_CONFIG"
DEFAULT_CONFIG_NAME = "vpt-tracker.toml"


class ConfigError(Exception):
    """A config file or value that cannot be used; the message names the key."""


def _variable(name: str) -> str | None:
    """The environment variable `name` as the config reads every `VPT_*` one: in any case
    (`vpt_secrets_file` too, as pydantic-settings reads `vpt_data_dir`), and empty is unset.

    `VPT_SECRETS_FILE` was read in capitals only: `vpt_secrets_file` passed the check for
    unknown variables and `config show` named it, but its secrets were never read. An empty
    `VPT_DATA_DIR=` was the current folder: the database, cache and models went wherever the
    command ran."""
    return {key.lower(): value for key, value in _set_variables().items()}.get(name.lower())


def default_data_dir() -> Path:
    return Path(_variable("VPT_DATA_DIR") or user_data_dir("vpt-tracker", appauthor=False))


def default_database_url(data_dir: Path | None = None) -> str:
    """SQLite in `data_dir` (default: the user data dir, or $VPT_DATA_DIR)."""
    return f"sqlite:///{(data_dir or default_data_dir()) / 'vpt-tracker.db'}"


#: Seconds; 0 would make sockets non-blocking (smtplib refuses it, httpx fails every request).
Timeout = Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)]
# A wait, an interval or a back-off base, finite and not negative: a negative `backoff_cap`
# was `sleep length must be non-negative`, a ValueError traceback, at the first retry.
Seconds = Annotated[float, Field(ge=0, le=86_400, allow_inf_nan=False)]


def _web_url(value: str) -> str:
    """A source's `base_url` is an http(s) URL with a host: `export.arxiv.org/api/query`,
    written without its scheme, loaded, and every fetch of that source then failed with
    httpx's "Request URL is missing an 'http://' or 'https://' protocol" (exit 1; a nightly
    run queued the window for a refetch that failed the same way, every night)."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return value.strip()


BaseUrl = Annotated[str, AfterValidator(_web_url)]


def _arxiv_category(value: str) -> str:
    """An arXiv category (`cs.CV`, `astro-ph`), or for a feed several joined by `+` (`cs.CV+cs.LG`,
    arXiv's combined feed). `"cs CV"` loaded: the API query read `(cat:cs CV OR …)`, a query
    for something else than cs.CV, and the feed URL `…/rss/cs%20CV`, without a word."""
    text = value.strip()
    if not all(arxiv_category(part) == part for part in text.split("+")):
        raise ValueError(f"{value!r} is not an arXiv category such as 'cs.CV'")
    return text


def _api_category(value: str) -> str:
    if "+" in value:  # the API ORs categories itself: `cat:cs.CV+cs.LG` is no category
        raise ValueError(f"{value!r} is not an arXiv category such as 'cs.CV' (list each one)")
    return _arxiv_category(value)


#: An arXiv category for the API query (one each), or a feed's (`cs.CV+cs.LG` joins several).
ApiCategory = Annotated[str, AfterValidator(_api_category)]
FeedCategory = Annotated[str, AfterValidator(_arxiv_category)]
#: A venue id or a conference name: an empty one asked for nothing and stored nothing, unsaid.
Named = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class Section(BaseModel):
    """A section of the config: a key it does not know is an error, as at the top level.

    Ignored, a misspelt key (`[smtp] hots = ...`, `preseet = ...`) left the default in place
    of what the maintainer wrote, and nothing said so.
    """

    model_config = ConfigDict(extra="forbid")


#: arXiv asks for one request per 3 s across the API and RSS together: its hosts are one
#: politeness budget ("arxiv").
ARXIV_HOSTS = ("export.arxiv.org", "rss.arxiv.org", "arxiv.org")
ARXIV_GROUP = "arxiv"
ARXIV_INTERVAL = 3.0


def _host_name(key: str) -> bool:
    """Whether a `min_interval` key can be a host: a name with a dot, `localhost`, an IP address."""
    return "." in key or ":" in key or key == "localhost"


class HttpConfig(Section):
    contact: str = "vpt-tracker maintainers <vpt-tracker@example.org>"
    timeout: Timeout = 30.0
    # Negative, no request was sent and `fetch` ended in an AssertionError traceback.
    max_retries: int = Field(default=5, ge=0, le=100)
    backoff_base: Seconds = 2.0
    backoff_cap: Seconds = 120.0
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    default_min_interval: Seconds = 1.0
    # Hosts that share one politeness budget. Before `min_interval`, whose check reads it.
    host_groups: dict[str, str] = Field(default_factory=dict)
    # Seconds between two requests to a group, by group name or by host (`HttpClient.min_interval`).
    min_interval: dict[str, Seconds] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _over_arxiv_defaults(cls, data: Any) -> Any:
        """The given tables over the arXiv defaults, not instead of them; a group given by its
        name replaces the defaults of its hosts.

        A maintainer who sets one host's interval (`min_interval = { "api2.openreview.net" =
        2.0 }`) did not mean to drop arXiv's, which a whole-table replacement did silently
        (1 s to arXiv); so a host's default goes only when that host is given. The group's
        name could only raise its interval (the longest of the group's values counts): to
        lower arXiv's, all three hosts had to be set. Now `{ "arxiv" = 1.0 }` drops the three
        defaults, and a host given beside it can still only raise the group's interval.
        """
        if not isinstance(data, dict):
            return data
        groups, intervals = data.get("host_groups", {}), data.get("min_interval", {})
        if not isinstance(groups, dict) or not isinstance(intervals, dict):
            return data  # the fields' own validation says what is wrong
        groups = {**dict.fromkeys(ARXIV_HOSTS, ARXIV_GROUP), **groups}
        defaults = {host: ARXIV_INTERVAL for host in ARXIV_HOSTS if groups[host] not in intervals}
        return {**data, "host_groups": groups, "min_interval": {**defaults, **intervals}}

    @field_validator("min_interval")
    @classmethod
    def _groups_or_hosts(cls, given: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        """Each key a group of `host_groups` or a host name: a misspelt group (`arxv`) was taken
        for a host that no request goes to, and the interval it meant was not set, unsaid."""
        groups = set((info.data.get("host_groups") or {}).values())
        for key in given:
            if key not in groups and not _host_name(key):
                known = ", ".join(sorted(groups)) or "none"
                raise ValueError(
                    f"{key!r} is neither a group of http.host_groups ({known}) nor a host name"
                    " such as 'export.arxiv.org'"
                )
        return given


class ArxivApiConfig(Section):
    enabled: bool = True
    base_url: BaseUrl = "https://export.arxiv.org/api/query"
    categories: list[ApiCategory] = Field(
        default_factory=lambda: ["cs.CV", "cs.LG", "cs.CL", "cs.AI", "cs.MM"]
    )
    keywords: list[str] = Field(default_factory=lambda: ["prompt"])
    page_size: int = Field(default=2000, ge=1, le=2000)
    # Days before a window that its query covers too: the API serves a submission only once
    # it is announced (a day later, three over a weekend), after the window that holds it
    # may have been fetched.
    lookback_days: int = Field(default=4, ge=0, le=30)


class ArxivRssConfig(Section):
    enabled: bool = True
    base_url: BaseUrl = "https://rss.arxiv.org/rss"
    categories: list[FeedCategory] = Field(
        default_factory=lambda: ["cs.CV", "cs.LG", "cs.CL", "cs.AI", "cs.MM"]
    )


class OpenReviewVenue(Section):
    venue_id: Named  # e.g. "ICLR.cc/2024/Conference"
    name: Named  # e.g. "ICLR"
    year: int = Field(ge=1980, le=2100)


class OpenReviewConfig(Section):
    enabled: bool = True
    base_url: BaseUrl = "https://api2.openreview.net"
    venues: list[OpenReviewVenue] = Field(default_factory=list)
    page_size: int = Field(default=1000, ge=1, le=1000)


class CvfConference(Section):
    name: Named  # CVPR, ICCV, WACV
    year: int = Field(ge=1980, le=2100)


class CvfConfig(Section):
    enabled: bool = True
    base_url: BaseUrl = "https://openaccess.thecvf.com"
    conferences: list[CvfConference] = Field(default_factory=list)
    fetch_abstracts: bool = True


class SourcesConfig(Section):
    arxiv_api: ArxivApiConfig = Field(default_factory=ArxivApiConfig)
    arxiv_rss: ArxivRssConfig = Field(default_factory=ArxivRssConfig)
    openreview: OpenReviewConfig = Field(default_factory=OpenReviewConfig)
    cvf: CvfConfig = Field(default_factory=CvfConfig)


class KeywordRules(Section):
    """Maintainer overrides on top of the model: `include` always queues, `exclude` never does.

    Compiled when the config loads: a bad rule found only when scoring failed the catalogue
    in a nightly run that had already stored the night's papers, and no later run scored them.
    """

    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)

    @field_validator("include", "exclude")
    @classmethod
    def _compiles(cls, value: list[str], info: ValidationInfo) -> list[str]:
        try:
            RuleSet(**{info.field_name or "include": value})
        except UserError as exc:
            raise ValueError(str(exc)) from None
        return value


class CatalogueConfig(Section):
    name: str
    preset: str | None = None
    readme: Path | None = None
    github_repo: str | None = None  # "owner/name"
    git_url: str | None = None  # overrides https://github.com/<repo>.git (tests use a local bare repo)
    base_branch: str = "main"
    branch: str | None = None  # default: vpt-tracker/<name>
    # "owner/name" of a fork of github_repo: the branch is pushed there and the pull request
    # opened from it (head = owner:branch), for a maintainer who may not push to the list.
    fork: str | None = None
    fork_git_url: str | None = None  # overrides https://github.com/<fork>.git
    recall_target: float = Field(default=0.95, gt=0, le=1)
    rules: KeywordRules = Field(default_factory=KeywordRules)

    @field_validator("name")
    @classmethod
    def _usable_name(cls, value: str) -> str:
        return check_catalogue_name(value)

    @field_validator("github_repo")
    @classmethod
    def _github_repo(cls, value: str | None) -> str | None:
        return check_github_repo(value) if value is not None else None

    @field_validator("fork")
    @classmethod
    def _fork(cls, value: str | None) -> str | None:
        return check_github_repo(value, key="fork") if value is not None else None

    @model_validator(mode="after")
    def _fork_is_another_repository(self) -> CatalogueConfig:
        """A fork that is the list itself, or a fork_git_url with no fork, would publish
        somewhere else than the maintainer meant; said at load, not after the commit."""
        if self.fork_git_url is not None and self.fork is None:
            raise ValueError('fork_git_url is set but fork is not; set fork = "owner/name" of your fork too')
        if (
            self.fork is not None
            and self.github_repo is not None
            and self.fork.lower() == self.github_repo.lower()
        ):
            raise ValueError(
                f"fork {self.fork!r} is the list's repository itself (github_repo); set it to your fork "
                "of the list, or remove fork to push to the list's repository"
            )
        return self

    @field_validator("branch", "base_branch")
    @classmethod
    def _branch(cls, value: str | None) -> str | None:
        return check_branch_name(value) if value is not None else None

    @field_validator("readme")
    @classmethod
    def _inside_the_repository(cls, value: Path | None) -> Path | None:
        """The README's path in the list's repository, as `catalogue import --readme-path`
        takes it: a local clone's absolute path passed the config and failed at publish."""
        return Path(check_readme_path(str(value))) if value is not None else None

    def import_command(self) -> str:
        """The `catalogue import` line that stores this list from its README in a clone: what a
        maintainer is told to run for a catalogue configured but not imported yet."""
        readme = self.readme or Path("README.md")
        words = ["vpt-tracker", "catalogue", "import", str(readme), "--name", self.name]
        if self.preset:
            words += ["--preset", self.preset]
        if readme.parent != Path("."):  # the default is the file's name, not its path
            words += ["--readme-path", str(readme)]
        return shlex.join(words)


class GithubConfig(Section):
    api_url: str = "https://api.github.com"
    token: SecretStr | None = None
    workdir: Path | None = None  # where list repositories are cloned; default: data dir


class SmtpConfig(Section):
    host: str = "localhost"
    # 0 is no port: smtplib reads it as "the default", 25 or 465, while messages said `:0`.
    port: Annotated[int, Field(ge=1, le=65_535)] = 587
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    sender: str = "vpt-tracker <vpt-tracker@localhost>"
    recipients: list[str] = Field(default_factory=list)
    timeout: Timeout = 30.0


class ScheduleConfig(Section):
    timezone: str = "UTC"
    nightly: str = "30 6 * * *"  # crontab: after arXiv's daily announcement
    digest: str = "0 8 * * mon"
    misfire_grace_seconds: int = 3600


#: The review app's actions: action -> (default keys, footer description). `review.keys` maps
#: an action to other keys. The one list: the app binds these, and the config refuses a name
#: that is not among them when it loads (the app alone found a misspelt action only when it
#: started, after every other command had run with that config).
REVIEW_ACTIONS: dict[str, tuple[str, str]] = {
    "down": ("j,down", "Down"),
    "up": ("k,up", "Up"),
    "accept": ("a", "Accept"),
    "relabel": ("l", "Edit labels"),
    "reject": ("x", "Reject"),
    "defer": ("d", "Defer"),
    "undo": ("u", "Undo"),
    "open": ("o", "Open"),
    "filter": ("slash", "Filter"),
    "help": ("question_mark", "Help"),
    "quit": ("q", "Quit"),
    "page_down": ("pagedown", "Page down"),
    "page_up": ("pageup", "Page up"),
    "detail_down": ("space", "Scroll detail down"),
    "detail_up": ("b", "Scroll detail up"),
}


def unknown_review_actions(keys: Mapping[str, str]) -> str | None:
    """What is wrong with the remapped keys `keys` (action -> keys), or None: the actions
    that do not exist, and the ones that do."""
    unknown = sorted(set(keys) - set(REVIEW_ACTIONS))
    if not unknown:
        return None
    return f"unknown action {', '.join(map(repr, unknown))}; actions: {', '.join(REVIEW_ACTIONS)}"


class ReviewConfig(Section):
    reviewer: str | None = None  # default: the login name
    order: Literal["relevance", "uncertainty"] = "relevance"
    keys: dict[str, str] = Field(default_factory=dict)  # action -> key, e.g. {"accept": "y"}
    reject_reasons: list[str] = Field(
        default_factory=lambda: [
            "off-topic",
            "not a vision model",
            "no base-to-novel experiments",
            "duplicate",
            "survey or position paper",
        ]
    )

    @field_validator("keys")
    @classmethod
    def _known_actions(cls, value: dict[str, str]) -> dict[str, str]:
        if problem := unknown_review_actions(value):
            raise ValueError(problem)
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VPT_",
        env_nested_delimiter="__",
        # Any case, as `_variable()` reads the ones the loader reads itself; empty is unset.
        case_sensitive=False,
        env_ignore_empty=True,
        extra="forbid",
    )

    database_url: str = Field(default_factory=default_database_url)
    data_dir: Path = Field(default_factory=default_data_dir)
    classifiers_dir: Path | None = None  # trained models; default: <data_dir>/classifiers
    presets_dir: Path | None = None  # a maintainer's own presets, looked in before the shipped ones
    secrets_file: Path | None = None
    http: HttpConfig = Field(default_factory=HttpConfig)
    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    catalogues: list[CatalogueConfig] = Field(default_factory=list)
    github: GithubConfig = Field(default_factory=GithubConfig)
    smtp: SmtpConfig = Field(default_factory=SmtpConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # CLI overrides (init), then the environment, then the files (TOML + secrets file).
        return (init_settings, env_settings, _FileSource(settings_cls, _FILE_DATA.get() or {}))

    @model_validator(mode="after")
    def _database_in_the_data_dir(self) -> Settings:
        """No `database_url` given: SQLite in `data_dir`, wherever that was set. Only
        $VPT_DATA_DIR moved it: `data_dir` in the file moved the cache, the models and the
        working copies, and left the database in the user data dir."""
        if "database_url" not in self.model_fields_set:
            self.database_url = default_database_url(self.data_dir)
        return self

    @field_validator("presets_dir")
    @classmethod
    def _presets_folder(cls, value: Path | None) -> Path | None:
        """A folder, none of whose presets takes a shipped preset's name (see `Presets`). A
        mount that did not happen is said at load, not as an unknown preset at import."""
        if value is not None:
            if not value.is_dir():
                raise ValueError(f"{value} is not a folder")
            if clashes := Presets(value).clashes():
                raise ValueError(clash_message(clashes, value))
        return value

    @field_validator("catalogues")
    @classmethod
    def _unique_catalogues(cls, value: list[CatalogueConfig]) -> list[CatalogueConfig]:
        """A name twice (a copied block not renamed) would leave the second block unused."""
        seen: set[str] = set()
        for catalogue in value:
            if catalogue.name in seen:
                raise ValueError(f"catalogue {catalogue.name!r} is configured twice")
            seen.add(catalogue.name)
        return value

    @property
    def cache_dir(self) -> Path:
        """Files that only save work and may be deleted at any time (the identity index)."""
        return self.data_dir / "cache"

    @property
    def presets(self) -> Presets:
        """Where this config's catalogues find their presets: `presets_dir`, then the shipped ones."""
        return Presets(self.presets_dir)

    def catalogue(self, name: str) -> CatalogueConfig | None:
        return next((c for c in self.catalogues if c.name == name), None)


def schedule_timezone(settings: Settings) -> tzinfo:
    """`schedule.timezone` as a zone: the cron lines' and the digest weeks' (UserError if unknown)."""
    try:
        return ZoneInfo(settings.schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(
            f"schedule.timezone: unknown time zone {settings.schedule.timezone!r} (e.g. 'Europe/Berlin')"
        ) from None


_FILE_DATA: ContextVar[dict[str, Any] | None] = ContextVar("vpt_file_data", default=None)


class _FileSource(PydanticBaseSettingsSource):
    """The merged TOML config and secrets file, below the environment in precedence."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self.data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    """The TOML file at `path`; every way it cannot be read is a `ConfigError` naming it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a directory, not a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    try:
        # utf-8-sig: a leading byte-order mark (Notepad writes one) is skipped; tomllib took
        # it for text, and the whole file was "not valid TOML" at line 1, column 1.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {exc.start} is invalid)") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from None


#: The keys that name a local file or folder: given relative in a file, relative to its folder.
PATH_KEYS = (("data_dir",), ("classifiers_dir",), ("presets_dir",), ("secrets_file",), ("github", "workdir"))


def _read_file(path: Path, what: str) -> dict[str, Any]:
    """The TOML file at `path`, with each relative path it gives (`PATH_KEYS`) made relative
    to the file's folder, not the current one: `secrets_file = "secrets.toml"` beside
    `/etc/vpt-tracker.toml` was read from wherever the command ran (cron: the home folder),
    and so was `data_dir = "data"`."""
    data = _read_toml(path, what)
    folder = path.absolute().parent
    for *sections, key in PATH_KEYS:
        table: Any = data
        for section in sections:
            table = table.get(section) if isinstance(table, dict) else None
        if isinstance(table, dict) and isinstance(table.get(key), str) and table[key]:
            table[key] = str(folder / table[key])  # an absolute path stays as it is
    return data


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def find_config_file(explicit: Path | None = None) -> Path | None:
    """The config file to read: `--config`, then `$VPT_CONFIG`, then ./vpt-tracker.toml."""
    if explicit is not None:
        return explicit
    env = _variable(CONFIG_ENV)
    if env:
        return Path(env)
    local = Path.cwd() / DEFAULT_CONFIG_NAME
    return local if local.exists() else None


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Resolve the config, raising `ConfigError` with the offending key on bad input.

    The message names where the bad value came from: the file, or the `VPT_*` variable.
    """
    path = find_config_file(config_file)
    data: dict[str, Any] = _read_file(path, "config file") if path else {}
    # In the config's precedence, the variable over the file: the file's one was read while
    # `config show` named the variable's, whose secrets were never read.
    secrets_path = overrides.get("secrets_file") or _variable("VPT_SECRETS_FILE") or data.get("secrets_file")
    if secrets_path:
        if not isinstance(secrets_path, str | Path):
            raise ConfigError(f"bad config: secrets_file: expected a path, not {secrets_path!r}")
        # The secrets file holds only secrets (github.token, smtp.password), kept out of the main file.
        data = _merge(data, _read_file(Path(secrets_path), "secrets file"))
    _refuse_unknown_variables()
    token = _FILE_DATA.set(data)
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            variables = _env_variables(error["loc"])
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            if not variables and error["type"] == "list_type" and (items := _item_variables(error["loc"])):
                # VPT_CATALOGUES__0__NAME made the list a table: its error named no variable
                # and blamed the list, which the file may well have given right.
                variables = items
                whole = "VPT_" + "__".join(str(part) for part in error["loc"]).upper()
                message = f"a list is set from the environment whole, as JSON in {whole}, not item by item"
            problems.append(_problem(error["loc"], message, variables))
        raise ConfigError("bad config: " + "; ".join(problems)) from None
    except SettingsError as exc:
        raise ConfigError(_settings_error(exc)) from None
    finally:
        _FILE_DATA.reset(token)
    if problems := _unknown_presets(settings):
        raise ConfigError("bad config: " + "; ".join(problems))
    return settings


def _problem(loc: tuple[int | str, ...], message: str, variables: list[str]) -> str:
    """`key (from VPT_VARIABLE): message`, one problem of a bad config."""
    key = ".".join(str(part) for part in loc) or "(top level)"
    origin = f" (from {', '.join(variables)})" if variables else ""
    return f"{key}{origin}: {message}"


def _unknown_presets(settings: Settings) -> list[str]:
    """Each catalogue's preset is a shipped one or one in `presets_dir`, said as a bad key is.

    A check across two keys, so made on the whole config: a catalogue's own validator cannot
    see `presets_dir`. A maintainer's own preset is as good as a shipped one (only the three
    shipped names passed, so a catalogue of a new preset could not be configured)."""
    presets = settings.presets
    known = presets.names()
    return [
        _problem(loc, presets.unknown(catalogue.preset), _env_variables(loc))
        for index, catalogue in enumerate(settings.catalogues)
        if catalogue.preset is not None and catalogue.preset not in known
        for loc in [("catalogues", index, "preset")]
    ]


#: `VPT_*` variables that are not config keys: the config file's, and the test suite's.
NOT_KEYS = (CONFIG_ENV,)
NOT_KEYS_PREFIX = "VPT_TEST_"


def _refuse_unknown_variables() -> None:
    """A `VPT_*` variable that names no top-level key is a typo (`VPT_DATABSE_URL`).

    pydantic-settings reads the variables of known keys only, so such a one was ignored and
    every command used the default in its place (the default database, not the one named);
    a misspelt key inside a section (`VPT_SMTP__HOTS`) is refused by the section itself.
    """
    fields = {name.upper() for name in Settings.model_fields}
    unknown = sorted(
        name
        for name in _set_variables()
        if name.upper().startswith("VPT_")
        and name.upper() not in NOT_KEYS
        and not name.upper().startswith(NOT_KEYS_PREFIX)
        and name.upper().removeprefix("VPT_").split("__")[0] not in fields
    )
    if unknown:
        raise ConfigError(
            "bad config: "
            + "; ".join(f"{name[4:].split('__')[0].lower()} (from {name}): unknown key" for name in unknown)
        )


def _set_variables() -> dict[str, str]:
    """The environment's variables that are set: an empty one is unset (`env_ignore_empty`)."""
    return {name: value for name, value in os.environ.items() if value}


def _env_variables(loc: tuple[int | str, ...]) -> list[str]:
    """The `VPT_*` variables set now that give the value at `loc` (`smtp.port`: VPT_SMTP__PORT
    or a JSON VPT_SMTP), as spelled in the environment; none when it came from a file."""
    names: list[str] = []
    for part in loc:
        if not isinstance(part, str):
            break  # a list item: only the whole list comes from one variable
        names.append(part)
    wanted = {"VPT_" + "__".join(names[:i]).upper() for i in range(1, len(names) + 1)}
    return sorted(name for name in _set_variables() if name.upper() in wanted)


def _item_variables(loc: tuple[int | str, ...]) -> list[str]:
    """The `VPT_*` variables set now below the list at `loc` (`VPT_SMTP__RECIPIENTS__0`)."""
    if not all(isinstance(part, str) for part in loc):
        return []
    prefix = "VPT_" + "__".join(str(part) for part in loc).upper() + "__"
    return sorted(name for name in _set_variables() if name.upper().startswith(prefix))


def _settings_error(exc: SettingsError) -> str:
    """pydantic-settings could not parse an environment value (JSON for a list, dict or section)."""
    found = re.search(r'field "([^"]+)"', str(exc))
    field = found.group(1) if found else ""
    prefix = f"VPT_{field}".upper()
    variables = sorted(
        name
        for name, value in _set_variables().items()
        if (name.upper() == prefix or name.upper().startswith(prefix + "__"))
        and _complex_and_not_json(name, value)
    )
    if not variables:
        return f"bad config from the environment: {exc}"
    reason = exc.__cause__ or exc.__context__
    detail = f": {reason}" if isinstance(reason, ValueError) and len(variables) == 1 else ""
    return f"{', '.join(variables)} is not valid JSON{detail} (a list, a table or a section is given as JSON)"


def _complex_and_not_json(name: str, value: str) -> bool:
    """Whether variable `name` sets a list, dict or section of `Settings` to text that is not JSON."""
    model: Any = Settings
    annotation: Any = None
    for part in name.upper().removeprefix("VPT_").split("__"):
        fields = getattr(model, "model_fields", None)
        if not isinstance(fields, dict):
            return False
        info = next((f for key, f in fields.items() if key.upper() == part), None)
        if info is None:
            return False
        annotation = _without_none(info.annotation)
        model = annotation
    complex_ = get_origin(annotation) in (list, dict) or (
        isinstance(annotation, type) and issubclass(annotation, BaseModel)
    )
    if not complex_:
        return False
    try:
        json.loads(value)
    except ValueError:
        return True
    return False


def _without_none(annotation: Any) -> Any:
    """`X | None` → X."""
    if get_origin(annotation) in (Union, UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def masked_dump(settings: Settings) -> dict[str, Any]:
    """The resolved config as JSON-able data with every secret replaced by `**********`."""
    return settings.model_dump(mode="json")
