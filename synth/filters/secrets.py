"""Secrets and personal data: find them in text and redact them with typed placeholders.

Everything synth sends to an endpoint or writes comes from user code or user datasets, so every
seed, every row read with ``-i`` and every LLM reply goes through one :class:`SecretScanner`
(``--secrets redact|drop|off``, default ``redact``):

- secrets: the regex plugins of ``detect-secrets`` (Yelp, PyPI 1.5.0) used as a library: AWS
  keys, Azure storage keys, GitHub/GitLab/Slack/Stripe/OpenAI/SendGrid/npm/PyPI tokens,
  JWTs (formally valid ones only), basic-auth passwords in URLs, its keyword detector
  (``password = "..."``, ``api_key: ...``); plus our own patterns for what it lacks: PEM private
  key blocks (whole block → one placeholder, also with literal ``\\n`` as in GCP service-account
  JSON), Google ``AIza`` API keys, ``Password=...;`` in connection strings, and high-entropy
  quoted strings assigned to a key-like name (``token``, ``secret``, ``key``... using
  detect-secrets' Shannon entropy with its default limits: 4.5 base64, 3.0 hex);
- personal data: e-mail addresses (not at ``example.com/org/net``, ``*.example``, ``*.test``,
  ``*.invalid``, ``localhost``; not ``git@host`` SSH remotes) and IPv4/IPv6 addresses that are
  globally routable. Decided: private (10/8, 172.16/12, 192.168/16, fc00::/7), loopback,
  link-local, multicast, unspecified, reserved and documentation ranges (192.0.2.0/24,
  198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are kept: they identify nobody outside the
  owner's network and are everywhere in networking code and tests. Well-known public resolvers
  (8.8.8.8, 1.1.1.1, 9.9.9.9, ...) are kept too. A dotted quad in a version context
  (``version``/``v``/``==``/``>=`` before it, or part of a longer dotted run like an OID) is a
  version, not an address.

Not findings (decided, tested): UUIDs, git SHAs and hash digests that are not assigned to a
key-like name, hash test vectors (``--secrets-allow`` whitelists whole paths on top), values
that are code rather than literals (``password = getpass()``), template references
(``${DB_PASSWORD}``, ``{password}``, ``%(password)s``, ``<PASSWORD>``) and placeholder words.

Cost: one Aho-Corasick pass over the lower-cased text finds every trigger, keyword and gate
literal at once and decides what else runs; the detect-secrets plugins then run only on the
lines that hold their triggers. Texts found clean are remembered (a record repeats its strings).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from synth.errors import ConfigError

MODES = ("redact", "drop", "off")

# kind -> placeholder. Kinds are what stats count; placeholders are what the text shows.
PLACEHOLDERS: dict[str, str] = {
    "aws_access_key": "<API_KEY>",
    "aws_secret_key": "<SECRET_KEY>",
    "azure_storage_key": "<SECRET_KEY>",
    "github_token": "<API_KEY>",
    "gitlab_token": "<API_KEY>",
    "slack_token": "<API_KEY>",
    "slack_webhook": "<SECRET_URL>",
    "stripe_key": "<API_KEY>",
    "openai_key": "<API_KEY>",
    "sendgrid_key": "<API_KEY>",
    "npm_token": "<API_KEY>",
    "pypi_token": "<API_KEY>",
    "gcp_api_key": "<API_KEY>",
    "jwt": "<TOKEN>",
    "private_key": "<PRIVATE_KEY>",
    "url_password": "<PASSWORD>",
    "bearer_token": "<TOKEN>",
    "connection_password": "<PASSWORD>",
    "password": "<PASSWORD>",
    "secret": "<SECRET>",
    "high_entropy_secret": "<SECRET>",
    "email": "<EMAIL>",
    "ip_address": "<IP_ADDRESS>",
}
_PLACEHOLDER_VALUES = frozenset(PLACEHOLDERS.values())


@dataclass(frozen=True, slots=True)
class Finding:
    """One secret or piece of personal data: its kind and span in the scanned text.

    The value itself is ``text[start:end]``; it is never stored anywhere by synth.
    """

    kind: str
    start: int
    end: int

    @property
    def placeholder(self) -> str:
        return PLACEHOLDERS[self.kind]


# (kind, literal triggers, whether they are matched lower-cased, detect-secrets plugin class).
# The plugin is imported and built on the first text holding a trigger: importing
# detect-secrets costs ~0.3 s (it pulls in requests for its verify step, which we never use).
_PLUGINS: tuple[tuple[str, tuple[str, ...], bool, str], ...] = (
    ("aws_access_key", ("AKIA", "ASIA", "ABIA", "ACCA", "A3T", "aws"), True, "aws.AWSKeyDetector"),
    ("azure_storage_key", ("AccountKey=",), False, "azure_storage_key.AzureStorageKeyDetector"),
    ("github_token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), False,
     "github_token.GitHubTokenDetector"),
    ("gitlab_token", ("glpat-", "gldt-", "glft-", "glsoat-", "glrt-", "GR1348941", "glcbt-",
                      "glimt-", "glptt-", "glagent-", "gloas-"), False,
     "gitlab_token.GitLabTokenDetector"),
    ("slack_token", ("xox", "hooks.slack.com"), True, "slack.SlackDetector"),
    ("stripe_key", ("k_live_",), False, "stripe.StripeDetector"),
    ("openai_key", ("T3BlbkFJ",), False, "openai.OpenAIDetector"),
    ("sendgrid_key", ("SG.",), False, "sendgrid.SendGridDetector"),
    ("npm_token", ("_authToken",), False, "npm.NpmDetector"),
    ("pypi_token", ("pypi-AgE",), False, "pypi_token.PypiTokenDetector"),
    ("jwt", ("eyJ",), False, "jwt.JwtTokenDetector"),
)


# Every trigger once, flat: a text is checked with one ``in`` per trigger and nothing else.
_TRIGGERS = tuple((t.lower() if lowered else t, lowered, i)
                  for i, (_, trig, lowered, _) in enumerate(_PLUGINS) for t in trig)
# One search each decides whether any trigger is there at all (most texts: none).
# detect-secrets' keyword DENYLIST spelled out (``api_?key`` -> ``apikey``, ``api_key``).
_KEYWORDS = ("apikey", "api_key", "authkey", "auth_key", "servicekey", "service_key",
             "accountkey", "account_key", "dbkey", "db_key", "databasekey", "database_key",
             "privkey", "priv_key", "privatekey", "private_key", "clientkey", "client_key",
             "dbpass", "db_pass", "databasepass", "database_pass", "keypass", "key_pass",
             "password", "passwd", "pwd", "secret", "contraseña", "contrasena")


@functools.cache
def _automaton() -> tuple[Any, tuple[tuple[int, str], ...], tuple[str, ...]]:
    """One Aho-Corasick automaton over every lower-cased plugin trigger, keyword, key-like
    word and gate literal of :func:`SecretScanner.scan`; what each pattern stands for:
    (plugin index, the trigger as written), (-1, keyword), (-2, key-like word) or (-3, gate);
    "~" + trigger marks the case-insensitive ones (never a real first character of a
    trigger); and the patterns.

    ahocorasick-rs (Rust's aho-corasick crate, SIMD prefilters): 4x faster than pyahocorasick
    over a prompt with no trigger, the common case, and every stored string passes here.
    """
    import ahocorasick_rs

    patterns: list[str] = []
    values: list[tuple[int, str]] = []
    for t, lowered, i in _TRIGGERS:
        if t.lower() not in patterns:
            patterns.append(t.lower())
            values.append((i, "~" + t if lowered else t))
    for index, words in ((-1, _KEYWORDS), (-2, _KEYLIKE_WORDS), (-3, _GATES)):
        for w in words:
            if w not in patterns:
                patterns.append(w)
                values.append((index, w))
    return (ahocorasick_rs.AhoCorasick(patterns, matchkind=ahocorasick_rs.MatchKind.Standard),
            tuple(values), tuple(patterns))


@functools.cache
def _bytes_automaton() -> Any:
    """:func:`_automaton`'s patterns over UTF-8 bytes, for :func:`trigger_free`, which only
    asks whether any occurs (a third faster than over ``str``: no offsets mapped back)."""
    import ahocorasick_rs

    return ahocorasick_rs.BytesAhoCorasick([p.encode() for p in _automaton()[2]],
                                           matchkind=ahocorasick_rs.MatchKind.Standard)


def trigger_free(text: str) -> bool:
    """Whether no detector of :meth:`SecretScanner.scan` has anything to start from in
    ``text``: no literal of the automaton pass, no dotted quad, no colon group.

    Such a text has no finding under any language's rules, and neither has any string whose
    characters all occur in it unbroken. Every string inside a JSON document written without
    ASCII escapes (``Record.to_json``) is one: such JSON escapes only quotes, backslashes and
    control characters, and no trigger holds one (a test checks each). So one pass over a
    record's JSON (~13 us for a generated record) stands for the walk and the scan per
    string (~40 us) whenever it finds nothing.
    """
    return (not _bytes_automaton().find_matches_as_indexes(
                text.lower().encode("utf-8", "surrogatepass"))
            and _DOTTED_QUAD.search(text) is None and _COLON_GROUP.search(text) is None)


@functools.cache
def _plugin(path: str) -> Any:
    """One detect-secrets plugin instance, e.g. ``aws.AWSKeyDetector``."""
    import importlib

    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(f"detect_secrets.plugins.{module}"), name)()


_KEYWORD_WORDS = ("key", "pass", "pwd", "secret", "contrase")
# detect-secrets' keyword DENYLIST, over lower-cased text: its regexes run on matching lines only.
_KEYWORD_RX = re.compile(r"api_?key|auth_?key|service_?key|account_?key|db_?key|database_?key|"
                         r"priv_?key|private_?key|client_?key|db_?pass|database_?pass|key_?pass|"
                         r"password|passwd|pwd|secret|contrase")
_KW = _KEYWORD_RX.pattern
# A keyword given a literal: quoted in code, anything in config files (over lower-cased text).
_KW_ASSIGN_QUOTED = re.compile(
    rf"(?:{_KW})[\w.-]*['\"\]]{{0,2}}\s*(?::=|=>|[:=(]|\.assign\()\s*[@bru]{{0,2}}['\"`]")
_KW_ASSIGN_ANY = re.compile(rf"(?:{_KW})[\w.-]*['\"\]]{{0,2}}\s*(?::=|[:=])\s*\S")
# Cheap prefilters, each starting with a literal so the regex engine skips ahead at C speed.
_AT_DOMAIN = re.compile(r"@[A-Za-z0-9-]+\.[A-Za-z]")
_DOTTED_QUAD = re.compile(r"\.\d{1,3}\.\d{1,3}\.\d")
_COLON_GROUP = re.compile(r":[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:")
# The literals that gate _OTHER_PASSWORD: a DSN's ``@tcp(`` or a command's ``-u`` (checked in
# the text's own case too), or an XML tag.
_USER_GATES = ("@tcp(", "@unix(", " -u ", "--user ")
_TAG_GATES = frozenset(("<passw", "<pwd>", "<secret>"))
_OTHER_PASSWORD_GATES = _TAG_GATES.union(_USER_GATES)
_QUOTED_LONG = re.compile(r"""['"`]([A-Za-z0-9+/=_\-.~]{16,})['"`]""")
_PASSWORDISH = re.compile(r"(?i)pass|pwd|contrase")

_PEM_FULL = re.compile(
    r"-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----[\s\S]{0,20000}?"
    r"-----END ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----")
# A block cut short (a window or a truncated reply): the header and the base64 lines after it.
_PEM_OPEN = re.compile(
    r"-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----"
    r"(?:\\n[A-Za-z0-9+/=]*|\n[ \t]*[A-Za-z0-9+/=]{16,}[ \t]*(?=\n|$)|[A-Za-z0-9+/=])*")
_PUTTY = re.compile(r"PuTTY-User-Key-File-\d:[\s\S]{0,8000}?Private-MAC: *[0-9a-fA-F]+")
_GCP_KEY = re.compile(r"AIza[0-9A-Za-z_\-]{35}(?![0-9A-Za-z_\-])")
_CONN_PASSWORD = re.compile(
    r"(?i)(?<![\w])(?:password|pwd)\s*=\s*([^;'\"\s<>{}$%()\[\],]{3,})(?=;|['\"]|\s*$)",
    re.MULTILINE)
_URL_PASSWORD = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://([^\s:/@'\"]+):([^\s/@'\"]+)@")
# Other places a password sits next to a user: Go's MySQL DSN ``user:pw@tcp(host)``,
# ``curl -u user:pw``, ``<password>pw</password>``.
_OTHER_PASSWORD = re.compile(
    r"(?<![\w/])[\w.-]+:([^\s:/@'\"()]{3,})@(?:tcp|unix)\(|(?:\s-u|--user)\s+[\w.-]+:([^\s'\"]{3,})"
    r"|(?i:<(password|passwd|pwd|secret)>)([^<\s]{4,})</")
_BEARER = re.compile(r"(?i:bearer)\s+([A-Za-z0-9\-._~+/]{20,}=*)")
_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?\.)+[A-Za-z]{2,24})(?![\w-])")
_IPV4 = re.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_VERSION_CONTEXT = re.compile(r"(?i)(?:version|release|v|ver|==|>=|<=|~=|!=|\bpython)[\W_]{0,6}$")
# What stands before a quoted literal assigned to a key-like name (its entropy decides).
_KEYLIKE_WORDS = ("key", "token", "secret", "passw", "pwd", "cred", "auth", "salt", "signature")
# (the automaton holds a word once: these are keywords first)
_KEYLIKE_KEYWORDS = frozenset(_KEYLIKE_WORDS) & frozenset(_KEYWORDS)
# The literals scan() needs before its other detectors run, lower-cased (the automaton's pass
# tells which occur; a case-sensitive one is then confirmed in the text itself).
_GATES = ("private key", "putty", "aiza", "@", "://", "password", "pwd", "@tcp(", "@unix(",
          " -u ", "--user ", "<passw", "<pwd>", "<secret>", "bearer")
_KEYLIKE_BEFORE = re.compile(
    rf"(?i)(?:{'|'.join(_KEYLIKE_WORDS)})[\w.-]*['\"\]]{{0,2}}"
    r"\s*(?::=|=>|==|=|:)\s*[@bBrRuU]{0,2}\Z")

# Domains of made-up addresses in docs and tutorials (RFC 2606 ones and the usual stand-ins).
_EXAMPLE_DOMAINS = ("example.com", "example.org", "example.net", "localhost", "email.com",
                    "domain.com", "sample.com", "test.com", "yourdomain.com", "mydomain.com",
                    "company.com", "yourcompany.com")
_EXAMPLE_TLDS = (".example", ".test", ".invalid", ".localhost", ".local")
_KNOWN_PUBLIC_IPS = frozenset({"8.8.8.8", "8.8.4.4", "1.1.1.1", "1.0.0.1", "9.9.9.9",
                               "208.67.222.222", "208.67.220.220"})
# Values that are words people put where a secret goes, not secrets.
_DUMMY_VALUES = frozenset({
    "password", "passwd", "secret", "changeme", "change_me", "xxx", "xxxx", "xxxxxx", "none",
    "null", "true", "false", "redacted", "hidden", "example", "test", "dummy", "placeholder",
    "your_password", "yourpassword", "your-password", "mypassword", "secret_key", "api_key",
    "token", "required", "optional", "string", "str", "bytes",
})


def _shannon(data: str, charset: str) -> float:
    import math

    if not data:
        return 0.0
    total = len(data)
    return -sum((n / total) * math.log2(n / total) for ch, n in Counter(data).items()
                if ch in charset)


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_"
_HEX = "0123456789abcdefABCDEF"


def _high_entropy(value: str) -> bool:
    """detect-secrets' default limits: hex strings above 3.0 bits, base64 above 4.5."""
    if all(c in _HEX for c in value):
        return len(value) >= 32 and _shannon(value.lower(), _HEX.lower()) > 3.0 \
            and not value.isdigit()
    if len(value) < 20 or not any(c.isdigit() for c in value):
        return False
    return _shannon(value, _B64) > 4.5 if len(value) >= 32 else _shannon(value, _B64) > 4.0


# Stand-ins people write where a secret goes: ``your_api_key``, ``my-token-here`` (only without
# digits: ``my_db_pw_2024`` may be real), and the classic fakes ``mypassword123``, ``abc123``.
_STAND_IN = re.compile(
    r"(?i)(?:your|my|the|some|test|dummy|sample|example|fake|placeholder|insert|enter|put)"
    r"[\w-]*|[\w-]*(?:here|placeholder|example)|[\w-]*(?:password|passwd|api_?key|secret|token)"
    r"[\w-]*|foo\w*|bar\w*")
_CLASSIC_FAKE = re.compile(r"(?i)(?:my|your)?pass(?:word)?\d*|abc(?:def)?123\d*|12345\d*|"
                           r"qwerty\d*|secret\d*|test\d*|admin\d*|letmein\d*")


def _is_reference(value: str) -> bool:
    """A template reference or placeholder rather than a literal secret."""
    v = value.strip()
    return (not v or v.lower() in _DUMMY_VALUES or v in _PLACEHOLDER_VALUES
            or (_STAND_IN.fullmatch(v) is not None and not any(c.isdigit() for c in v))
            or _CLASSIC_FAKE.fullmatch(v) is not None
            or v[0] in "$%{<[(*" or v.startswith(("os.", "env", "process.", "getenv"))
            or "{" in v or "}" in v or v.endswith(("(", ")")) or set(v) <= set("*x.-_#•X"))


def _keyword_ok(value: str, quoted: bool) -> bool:
    """Whether a keyword-detector value looks like a literal secret rather than code/prose."""
    v = value.strip()
    if len(v) < 4 or _is_reference(v) or " " in v:
        return False
    if quoted:
        return True
    # Unquoted (config files, env assignments): an identifier or dotted name is code, not a
    # password; a real value mixes letters with digits or symbols.
    if re.fullmatch(r"[A-Za-z_][\w.]*", v) or not re.search(r"[\d\W_]", v) \
            or re.search(r"[()\[\]$]", v):
        return False
    return bool(re.search(r"[A-Za-z]", v)) or len(v) >= 8


_CONFIG_LANGS = frozenset({"yaml", "ini", "toml", "properties", "dotenv", "shell", "env",
                           "config", "makefile", "dockerfile", ""})


def _rules(lang: str) -> str:
    """The keyword rules ``lang`` is scanned with: ``""`` (config files: any assignment),
    ``go``, ``c``, ``cpp`` or ``quoted`` (a quoted literal). A clean verdict depends on it."""
    if lang in _CONFIG_LANGS:
        return ""
    if lang in ("c", "csharp"):
        return "c"
    return lang if lang in ("go", "cpp") else "quoted"


# The memo's rules for a text found clean without any keyword in it (see SecretScanner.findings)
_ANY_RULES = "*"


def _keyword_groups(rules: str) -> Any:
    """detect-secrets' keyword regexes (to their value group) for a :func:`_rules` name."""
    from detect_secrets.plugins import keyword as kw

    return {"": kw.CONFIG_DENYLIST_REGEX_TO_GROUP, "go": kw.GOLANG_DENYLIST_REGEX_TO_GROUP,
            "c": kw.COMMON_C_DENYLIST_REGEX_TO_GROUP, "cpp": kw.C_PLUS_PLUS_REGEX_TO_GROUP,
            "quoted": kw.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP}[rules]


def _ip_finding(value: str, text: str, start: int) -> bool:
    """Whether an IP-shaped ``value`` at ``start`` is an address worth redacting."""
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return False
    if not ip.is_global or value in _KNOWN_PUBLIC_IPS:
        return False
    if ip.version == 4:
        before = text[max(0, start - 20):start]
        if _VERSION_CONTEXT.search(before):
            return False
    else:
        # Only full-looking addresses: three or more colons and at least one long group
        # (``a::b`` and ``1::2`` are slices and scopes far more often than addresses).
        if value.count(":") < 3 or not any(len(g) >= 3 for g in value.split(":")):
            return False
    return True


def _email_ok(domain: str, local_start: int, text: str) -> bool:
    d = domain.lower()
    if d in _EXAMPLE_DOMAINS or d.endswith(_EXAMPLE_TLDS) or \
            any(d.endswith("." + e) for e in _EXAMPLE_DOMAINS):
        return False
    # ``git@github.com:org/repo`` is a remote, not a person.
    return not text.startswith("git@", local_start)


def _triggers(text: str, lower: str) -> tuple[dict[int, set[tuple[int, int]]],
                                             set[tuple[int, int]], bool, set[str]]:
    """One Aho-Corasick pass over the lower-cased text: the lines holding each plugin's
    triggers, the lines holding a keyword, whether any key-like word occurs, and every
    pattern seen (lower-cased). Most texts have none of them and cost nothing more."""
    plugin_lines: dict[int, set[tuple[int, int]]] = {}
    keyword_lines: set[tuple[int, int]] = set()
    keylike = False
    seen: set[str] = set()
    automaton, values, patterns = _automaton()
    for pattern, start, _ in automaton.find_matches_as_indexes(lower, overlapping=True):
        seen.add(patterns[pattern])
        index, exact = values[pattern]
        if index <= -2:
            keylike = keylike or index == -2
            continue
        if index >= 0 and exact[0] != "~" and not text.startswith(exact, start):
            continue  # a case-sensitive trigger in other case (``msg.`` is not ``SG.``)
        span = _line_span(text, start)
        if index < 0:
            keyword_lines.add(span)
            keylike = keylike or exact in _KEYLIKE_KEYWORDS
        else:
            plugin_lines.setdefault(index, set()).add(span)
    return plugin_lines, keyword_lines, keylike, seen


class SecretScanner:
    """Finds secrets and personal data in text and replaces them with typed placeholders.

    Args:
        allow: path globs (``fnmatch``, ``*`` crosses ``/``) whose files are never scanned, for
            test vectors and fixtures the user vouches for.
    """

    #: Texts found clean, remembered so that the same string met again is not scanned again:
    #: a stored record repeats its reply, prompt and fields in several places, and every
    #: record repeats the system prompt and the model's name. Bounded: two generations of
    #: this many texts, the older one dropped whole when the newer one fills.
    CLEAN_MEMO = 2048
    CLEAN_MEMO_MAX_CHARS = 65536

    def __init__(self, allow: Sequence[str] = ()) -> None:
        self.allow = tuple(allow)
        # text -> the keyword rules it was found clean under (_ANY_RULES: any rules)
        self._clean: dict[str, str] = {}
        self._clean_old: dict[str, str] = {}
        # We run detect-secrets' plugin regexes ourselves (never analyze_line, which may call
        # its verify step over the network).

    def allowed(self, path: str) -> bool:
        """Whether ``path`` matches an ``--secrets-allow`` glob."""
        return bool(path) and any(fnmatch.fnmatch(path, g) for g in self.allow)

    def scan(self, text: str, lang: str = "") -> list[Finding]:
        """Every finding in ``text``, sorted, without overlaps (the earlier, longer one wins).

        Each detector first looks for a literal it cannot match without (seen in the one
        automaton pass, or a regex that starts with a literal: C speed); most code has none of
        them and costs that pass. Broad regexes with case-insensitive alternations or no
        literal prefix are 10-100x slower per byte, so they only ever see the lines or windows
        that passed.
        """
        return self._scan(text, lang)[0]

    def _scan(self, text: str, lang: str) -> tuple[list[Finding], bool]:
        """:meth:`scan`, and whether the verdict depends on ``lang``'s keyword rules (only
        when a keyword occurs: every other detector ignores the language)."""
        if not text:
            return [], False
        found: list[Finding] = []
        add = found.append
        lower = text.lower()
        plugin_lines, keyword_lines, keylike, seen = _triggers(text, lower)
        # (a literal with capitals occurs in the text only if its lower case is in ``lower``)
        if ("private key" in seen and "PRIVATE KEY" in text) or \
                ("putty" in seen and "PuTTY" in text):
            for rx in (_PEM_FULL, _PEM_OPEN, _PUTTY):
                for m in rx.finditer(text):
                    add(Finding("private_key", m.start(), m.end()))
        if "aiza" in seen and "AIza" in text:
            for m in _GCP_KEY.finditer(text):
                add(Finding("gcp_api_key", m.start(), m.end()))
        if "@" in seen:
            userinfo: list[tuple[int, int]] = []
            if "://" in seen:
                for m in _URL_PASSWORD.finditer(text):
                    userinfo.append((m.start(1), m.end(2)))
                    if not _is_reference(m.group(2)):
                        add(Finding("url_password", m.start(2), m.end(2)))
            if _AT_DOMAIN.search(text):
                for m in _EMAIL.finditer(text):
                    # ``user:pass@host`` of a URL is a password, not an e-mail address.
                    if _email_ok(m.group(1), m.start(), text) and not any(
                            a <= m.start() < b for a, b in userinfo):
                        add(Finding("email", m.start(), m.end()))
        if _DOTTED_QUAD.search(text):
            for m in _IPV4.finditer(text):
                if _ip_finding(m.group(), text, m.start()):
                    add(Finding("ip_address", m.start(), m.end()))
        if _COLON_GROUP.search(text):
            for m in _IPV6.finditer(text):
                if _ip_finding(m.group(), text, m.start()):
                    add(Finding("ip_address", m.start(), m.end()))
        if "password" in seen or "pwd" in seen:
            for m in _CONN_PASSWORD.finditer(text):
                if not _is_reference(m.group(1)):
                    add(Finding("connection_password", m.start(1), m.end(1)))
        if not seen.isdisjoint(_OTHER_PASSWORD_GATES) and (
                any(g in seen and g in text for g in _USER_GATES)
                or not seen.isdisjoint(_TAG_GATES)):
            for m in _OTHER_PASSWORD.finditer(text):
                g = next(i for i in (1, 2, 4) if m.group(i) is not None)
                if not _is_reference(m.group(g)):
                    add(Finding("password", m.start(g), m.end(g)))
        if "bearer" in seen:
            for m in _BEARER.finditer(text):
                if _high_entropy(m.group(1)) or len(m.group(1)) >= 32:
                    if not _is_reference(m.group(1)):
                        add(Finding("bearer_token", m.start(1), m.end(1)))
        # (no key-like word anywhere: no high-entropy finding, and the regex does not run)
        for m in _QUOTED_LONG.finditer(text) if keylike else ():
            before = max(0, m.start() - 80)
            # the key-like name the regex below needs, looked for first as plain substrings
            # (long quoted strings are everywhere in code; key-like names before them are not)
            window = text[before:m.start()].lower()
            if not any(word in window for word in _KEYLIKE_WORDS):
                continue
            value = m.group(1)
            if _KEYLIKE_BEFORE.search(text, before, m.start()) and \
                    _high_entropy(value) and not _is_reference(value):
                add(Finding("high_entropy_secret", m.start(1), m.end(1)))
        if plugin_lines or keyword_lines:
            self._scan_lines(text, lower, lang, add, plugin_lines, keyword_lines)
        return (_resolve(found) if found else found), bool(keyword_lines)

    def _scan_lines(self, text: str, lower: str, lang: str, add: Callable[[Finding], None],
                    plugin_lines: dict[int, set[tuple[int, int]]],
                    keyword_lines: set[tuple[int, int]]) -> None:
        """detect-secrets' plugins and keyword regexes, on the lines holding their triggers."""
        for i, lines in sorted(plugin_lines.items()):
            kind, _, _, path = _PLUGINS[i]
            for start, end in sorted(lines):
                for s, e, k in _plugin_spans(kind, _plugin(path), text[start:end]):
                    add(Finding(k, start + s, start + e))
        if not keyword_lines:
            return
        # Only lines where a keyword is given a literal (or compared with one) go on to
        # detect-secrets' regexes (~140 us a line, and its import ~0.3 s on first use).
        rules = _rules(lang)
        assign = _KW_ASSIGN_ANY if rules == "" else _KW_ASSIGN_QUOTED
        spans = sorted(span for span in keyword_lines
                       if assign.search(lower, span[0], span[1])
                       or "==" in lower[span[0]:span[1]])
        groups = _keyword_groups(rules) if spans else {}
        for start, end in spans:
            line = text[start:end]
            # detect-secrets' KeywordDetector regexes for this file type, run here rather than
            # through analyze_string because we need the value's position.
            for rx, group in groups.items():
                for m in rx.finditer(line):
                    value = m.group(group)
                    if not value:
                        continue
                    quoted = m.start(group) > 0 and line[m.start(group) - 1] in "'\"`"
                    if _keyword_ok(value, quoted):
                        key = m.group(0)[:m.start(group) - m.start(0)]
                        k = "password" if _PASSWORDISH.search(key) else "secret"
                        vend = m.start(group) + len(value.rstrip())
                        add(Finding(k, start + m.start(group), start + vend))

    def redact(self, text: str, lang: str = "") -> tuple[str, Counter[str]]:
        """``text`` with every finding replaced by its placeholder, and the counts per kind."""
        found: Counter[str] = Counter()
        return self.redact_into(text, lang, found), found

    def redact_into(self, text: str, lang: str, found: Counter[str]) -> str:
        """:meth:`redact`, adding the counts per kind to ``found``."""
        findings = self.findings(text, lang)
        if findings:
            found.update(f.kind for f in findings)
            return apply(text, findings)
        return text

    def findings(self, text: str, lang: str = "") -> list[Finding]:
        """:meth:`scan`, remembering texts found clean (see :attr:`CLEAN_MEMO`)."""
        rules = _rules(lang)
        if self.known_clean(text, rules):
            return []
        findings, by_rules = self._scan(text, lang)
        if not findings and len(text) <= self.CLEAN_MEMO_MAX_CHARS:
            if len(self._clean) >= self.CLEAN_MEMO:
                # Two generations, O(1) each: deleting a dict's oldest entry one at a time
                # makes every next(iter()) step over the holes left before it.
                self._clean_old, self._clean = self._clean, {}
            # Clean without a keyword in it: clean under every language's rules (a record's
            # instruction is its parsed problem, scanned as code and again as meta). A text
            # clean under one language's rules only is remembered for those (the latest).
            self._clean[text] = rules if by_rules else _ANY_RULES
        return findings

    def known_clean(self, text: str, rules: str) -> bool:
        """Whether the memo holds ``text`` as clean under ``rules`` (a :func:`_rules` name):
        one dict lookup per generation, no scan."""
        hit = self._clean.get(text)
        if hit is None:
            hit = self._clean_old.get(text)
        return hit is not None and (hit == rules or hit == _ANY_RULES)


def _line_span(text: str, pos: int) -> tuple[int, int]:
    """[start, end) of the line holding ``pos`` (without its newline)."""
    end = text.find("\n", pos)
    return text.rfind("\n", 0, pos) + 1, len(text) if end < 0 else end


_TOKEN_TAIL = re.compile(r"[A-Za-z0-9_\-+/=]*")


def _plugin_spans(kind: str, plugin: Any, line: str) -> Iterator[tuple[int, int, str]]:
    """Spans of a detect-secrets regex plugin's matches in ``line``.

    Its own ``analyze_string`` returns ``findall`` results, which for patterns with a group
    are the group (``ghp`` of a GitHub token), not the token; so we run its ``denylist``
    ourselves: the whole match, except AWS's keyword pattern whose group is the secret key.
    """
    for rx in plugin.denylist:
        for m in rx.finditer(line):
            k = kind
            if kind == "aws_access_key" and rx.groups:
                start, end, k = m.start(1), m.end(1), "aws_secret_key"
            else:
                start, end = m.span()
            if kind == "azure_storage_key":
                start += len("AccountKey=")  # keep the key name, redact the value
            elif kind == "npm_token":
                start, end = m.span(1)  # the token, not the registry URL before it
            if kind == "jwt":
                # detect-secrets' JWT pattern stops before the signature (lazy); take it too.
                end = _TOKEN_TAIL.match(line, end).end()  # type: ignore[union-attr]
                if not plugin.is_formally_valid(line[start:end].rstrip(".")):
                    continue
            elif kind == "slack_token" and line.startswith("https://", start):
                k = "slack_webhook"
            if end > start and not _is_reference(line[start:end]):
                yield start, end, k


# Kinds a specific detector should win against when both cover the same span.
_GENERIC = frozenset({"high_entropy_secret", "secret", "password"})


def _resolve(found: list[Finding]) -> list[Finding]:
    """Sorted findings without overlaps: the earliest wins, then the longest, then the most
    specific (a GitHub token assigned to ``token = "..."`` is a github_token)."""
    found.sort(key=lambda f: (f.start, -(f.end - f.start), f.kind in _GENERIC))
    out: list[Finding] = []
    end = -1
    for f in found:
        if f.start >= end:
            out.append(f)
            end = f.end
    return out


def apply(text: str, findings: Iterable[Finding]) -> str:
    """Replace each (sorted, non-overlapping) finding's span by its placeholder."""
    parts: list[str] = []
    pos = 0
    for f in findings:
        parts.append(text[pos:f.start])
        parts.append(f.placeholder)
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts)


def redact_blocks_keep_lines(text: str) -> tuple[str, int]:
    """Whole-file pass: each private key block becomes one placeholder plus the same number of
    newlines, so line numbers (and the windows drawn from them) stay as they were and no window
    can start inside a block and carry its base64 body out."""
    if "PRIVATE KEY" not in text:  # one C-speed pass over the whole file; PuTTY files are
        return text, 0             # not code (the per-seed scan still catches them)
    spans = _resolve([Finding("private_key", m.start(), m.end())
                      for rx in (_PEM_FULL, _PEM_OPEN) for m in rx.finditer(text)])
    if not spans:
        return text, 0
    parts: list[str] = []
    pos = 0
    for f in spans:
        parts += [text[pos:f.start], f.placeholder, "\n" * text.count("\n", f.start, f.end)]
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts), len(spans)


@dataclass
class SecretsPolicy:
    """What to do with findings (``mode``) and what was found, per place it was found.

    ``counts[where][kind]`` counts findings; ``where`` is ``seeds``, ``input`` (rows read with
    ``-i``), ``replies`` (LLM output) or ``records`` (the last check before a record is stored).
    ``redacted`` / ``dropped`` count texts changed and records left out.
    """

    mode: str = "redact"
    allow: tuple[str, ...] = ()
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    redacted: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    allowed: int = 0
    _scanner: SecretScanner | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"--secrets must be one of {', '.join(MODES)}, got {self.mode!r}")
        self.allow = tuple(self.allow)

    @property
    def on(self) -> bool:
        return self.mode != "off"

    @property
    def scanner(self) -> SecretScanner:
        if self._scanner is None:
            self._scanner = SecretScanner(self.allow)
        return self._scanner

    def count(self, where: str, found: Counter[str]) -> None:
        if found:
            self.counts.setdefault(where, Counter()).update(found)

    def text(self, text: str, where: str, lang: str = "") -> str:
        """``text`` redacted (whatever the mode but ``off``: a reply cannot be un-received)."""
        if not self.on or not text:
            return text
        out, found = self.scanner.redact(text, lang)
        if found:
            self.count(where, found)
            self.redacted[where] += 1
        return out

    def reply(self, text: str) -> str:
        """An LLM reply, redacted (before it is cached, parsed or written)."""
        return self.text(text, "replies")

    def seeds(self, records: Iterable[Any]) -> Iterator[Any]:
        """Seeds read for generation: counts what extraction found (``provenance.secrets``)
        and redacts what it did not see (a ``--seeds`` file extracted elsewhere or with
        ``--secrets off``); a redacted seed gets the id of its new text."""
        for record in records:
            prov = record.meta.get("provenance") or {}
            if isinstance(prov.get("secrets"), dict):
                self.count("seeds", Counter(prov["secrets"]))
            if not self.on or (self.allow and self.allowed_path(str(prov.get("path", "")))):
                yield record
                continue
            findings = self.scanner.findings(record.seed, record.lang)
            if not findings:
                yield record
                continue
            found = Counter(f.kind for f in findings)
            self.count("seeds", found)
            if self.mode == "drop":
                self.dropped["seeds"] += 1
                continue
            self.redacted["seeds"] += 1
            new = type(record).from_seed(apply(record.seed, findings), record.lang,
                                         dict(prov, secrets=dict(sorted(found.items()))))
            new.meta.update({k: v for k, v in record.meta.items() if k != "provenance"})
            yield new

    def scrub_record(self, record: Any, where: str = "records",
                     meta: bool = True) -> Counter[str]:
        """Redact every text field of ``record`` and every string in its meta, in place.

        ``meta=False`` (rows read from a dataset) scans only the unknown columns
        (``meta['extra']``), not synth's own bookkeeping (source path, row number).
        """
        found: Counter[str] = Counter()
        if not self.on:
            return found
        for name in ("seed", "instruction", "input", "response"):
            value = getattr(record, name)
            if value:
                out = self.scanner.redact_into(value, record.lang, found)
                if out is not value:
                    setattr(record, name, out)
        if meta:
            record.meta = _scrub_tree(record.meta, self.scanner, found, _OWN_HASHES)
        elif "extra" in record.meta:
            record.meta["extra"] = _scrub_tree(record.meta["extra"], self.scanner, found)
        if found:
            self.count(where, found)
            self.redacted[where] += 1
        return found

    def stored(self, record: Any, text: str) -> str:
        """The JSON that ``record`` is stored as, ``text`` being its ``to_json()``: the record
        is :meth:`scrub_record`-ed first unless ``text`` is :func:`trigger_free` (most
        generated records), and written again only when that redacted something."""
        if not self.on or trigger_free(text):
            return text
        return record.to_json() if self.scrub_record(record) else text

    def to_dict(self) -> dict[str, Any]:
        """The ``secrets`` entry of stats.json: mode, counts per place and kind, totals."""
        total: Counter[str] = Counter()
        for c in self.counts.values():
            total.update(c)
        return {"mode": self.mode, "allow": list(self.allow),
                "found": {w: dict(sorted(c.items())) for w, c in sorted(self.counts.items())},
                "by_kind": dict(sorted(total.items())),
                "redacted": dict(sorted(self.redacted.items())),
                "dropped": dict(sorted(self.dropped.items())), "allowed": self.allowed}

    def rows(self, records: Iterable[Any], where: str = "input") -> Iterator[Any]:
        """Records read from a dataset (``-i``), redacted or, in drop mode, left out."""
        for record in records:
            if not self.on:
                yield record
                continue
            path = str((record.meta.get("provenance") or {}).get("path", ""))
            if self.allow and self.allowed_path(path):
                yield record
                continue
            found = self.scrub_record(record, where, meta=False)
            if found and self.mode == "drop":
                self.dropped[where] += 1
                continue
            yield record

    def allowed_path(self, path: str) -> bool:
        hit = self.scanner.allowed(path)
        if hit:
            self.allowed += 1
        return hit


#: Meta keys whose values synth computes itself (content hashes and ids): never user text.
_OWN_HASHES = frozenset({"seed_id", "template_hash", "file_sha256", "few_shot"})


def _scrub_tree(value: Any, scanner: SecretScanner, found: Counter[str],
                skip: frozenset[str] = frozenset()) -> Any:
    """``value`` with every string in it redacted (config keyword rules), values under a key
    in ``skip`` left alone. Copy on write: a clean tree comes back as the same object, and a
    container met twice (a record's ``raw`` is its last round's exchange) is walked once."""
    seen: dict[int, Any] = {}
    rules = _rules("")
    known_clean = scanner.known_clean

    def walk(container: dict[Any, Any] | list[Any]) -> Any:
        # Strings and scalars are handled here, without a call each: a record's meta is
        # ~35 values, and a call per value was a third of the time its scrub took.
        done = seen.get(id(container))
        if done is not None:
            return done
        out = container
        items = container.items() if isinstance(container, dict) else enumerate(container)
        for k, v in items:
            if k in skip:
                continue
            if isinstance(v, str):
                # (most strings of a record were met before: its reply, prompt and fields
                # repeat)
                new = v if known_clean(v, rules) else scanner.redact_into(v, "", found)
            elif isinstance(v, (dict, list)):
                new = walk(v)
            else:
                continue
            if new is not v:
                if out is container:
                    out = dict(container) if isinstance(container, dict) else list(container)
                out[k] = new
        seen[id(container)] = out
        return out

    return walk([value])[0]


@functools.lru_cache(maxsize=8)
def scanner_for(allow: tuple[str, ...] = ()) -> SecretScanner:
    """One scanner per allow-list for the whole process (plugins are built once)."""
    return SecretScanner(allow)


class SeedScrubber:
    """Secrets in the seeds of one source file (``seeds extract`` and ``seeds refresh``).

    Built per file with :meth:`for_file`: private key blocks are blanked in the whole file first
    (lines kept, so windows and line numbers do not move), then each seed is scanned; a seed
    with findings is redacted (new text, new id, ``provenance["secrets"]`` = counts per kind) or,
    in ``drop`` mode, dropped. Counts go to the extraction's ``counts``: ``secret_<kind>``,
    ``secrets_redacted``, ``drop_secrets``, ``secrets_allowed_files``.
    """

    def __init__(self, source: Any, mode: str, scanner: SecretScanner | None,
                 counts: Counter[str], blocks: int = 0) -> None:
        self.source = source
        self.mode = mode
        self.scanner = scanner
        self.counts = counts
        self.blocks = blocks

    @classmethod
    def for_file(cls, source: Any, mode: str, allow: Sequence[str],
                 counts: Counter[str]) -> SeedScrubber:
        if mode == "off":
            return cls(source, mode, None, counts)
        scanner = scanner_for(tuple(allow))
        if allow and (scanner.allowed(source.path)
                      or scanner.allowed(f"{source.root}/{source.path}")):
            counts["secrets_allowed_files"] += 1
            return cls(source, mode, None, counts)
        text, blocks = redact_blocks_keep_lines(source.text)
        if blocks:
            counts["secret_private_key"] += blocks
            source = dataclasses.replace(source, text=text)
        return cls(source, mode, scanner, counts, blocks)

    def __call__(self, record: Any) -> Any:
        """``record`` redacted, or None when it is dropped."""
        if self.scanner is None:
            return record
        if self.blocks and self.mode == "drop":
            self.counts["drop_secrets"] += 1
            return None
        findings = self.scanner.findings(record.seed, record.lang)
        # Key blocks were replaced in the whole file already (and counted there); the seeds
        # that hold one record it in their provenance too.
        blocks = record.seed.count(PLACEHOLDERS["private_key"]) if self.blocks else 0
        if not findings and not blocks:
            return record
        found = Counter(f.kind for f in findings)
        for kind, n in found.items():
            self.counts[f"secret_{kind}"] += n
        if self.mode == "drop":
            self.counts["drop_secrets"] += 1
            return None
        self.counts["secrets_redacted"] += 1
        if blocks:
            found["private_key"] += blocks
        prov = dict(record.meta["provenance"], secrets=dict(sorted(found.items())))
        return type(record).from_seed(apply(record.seed, findings), record.lang, prov)


def policy_for(config: Any) -> SecretsPolicy:
    """The policy of a :class:`synth.config.SecretsConfig` (None: the default, redact)."""
    if config is None:
        return SecretsPolicy()
    return SecretsPolicy(config.mode, tuple(config.allow))


def attach(policy: SecretsPolicy, ctx: Any, client: Any = None) -> None:
    """Wire ``policy`` into a run: every record is checked before the store keeps it, every
    LLM reply before it is cached or parsed, and the counts go to stats.json/the card."""
    ctx.stats.extra["secrets"] = policy.to_dict
    if not policy.on:
        return
    ctx.store.scrub = policy.stored
    if client is not None:
        client.scrub = policy.reply
