"""The secrets/PII detector: what it finds, what it leaves, and how it redacts."""

from __future__ import annotations

import ast
import copy
import json
from collections import Counter

import pytest
from secrets_corpus import FILES, KEEP, PLANTED

from synth.filters.secrets import (
    SecretScanner,
    SecretsPolicy,
    SeedScrubber,
    _automaton,
    redact_blocks_keep_lines,
    trigger_free,
)
from synth.records import Record
from synth.seeds.corpus import SourceFile

_scanner = SecretScanner()

LANGS = {".py": "python", ".js": "javascript", ".go": "go", ".java": "java", ".sh": "shell",
         ".yaml": "yaml", ".env": ""}


def _lang(path: str) -> str:
    return LANGS[path[path.rfind("."):]]


def kinds(text: str, lang: str = "python") -> list[str]:
    return [f.kind for f in _scanner.scan(text, lang)]


@pytest.mark.parametrize(("kind", "value", "path"), PLANTED,
                         ids=[f"{k}-{p}" for k, _, p in PLANTED])
def test_planted_value_is_found_under_its_kind(kind: str, value: str, path: str) -> None:
    text = FILES[path]
    findings = _scanner.scan(text, _lang(path))
    hits = [f for f in findings if text[f.start:f.end] == value
            or (f.kind == "private_key" and value in text[f.start:f.end])]
    assert [f.kind for f in hits] == [kind]
    assert value not in _scanner.redact(text, _lang(path))[0]


@pytest.mark.parametrize(("text", "lang", "expected"), [
    ('password = "hunter2!x"', "python", "password = \"<PASSWORD>\""),
    ("password: s3cr3tP@ss99\nhost: x\n", "yaml", "password: <PASSWORD>\nhost: x\n"),
    ("export DB_PASSWORD=xK9#mq2LpZ", "shell", "export DB_PASSWORD=<PASSWORD>"),
    ('dbPassword := "Tr0ub4dor&3x"', "go", 'dbPassword := "<PASSWORD>"'),
    ('u = "mysql://app:Zq9v2Lk7@10.0.0.5/db"', "python", 'u = "mysql://app:<PASSWORD>@10.0.0.5/db"'),
    ("# mail jane.doe@acme-corp.com", "python", "# mail <EMAIL>"),
    ("ping 93.184.216.34", "shell", "ping <IP_ADDRESS>"),
    ('h = "2606:4700:90:0:f22e:fbec:5bed:a9b9"', "python", 'h = "<IP_ADDRESS>"'),
    ('k = "-----BEGIN EC PRIVATE KEY-----\\nMHcCAQEEIIabc\\n-----END EC PRIVATE KEY-----"',
     "python", 'k = "<PRIVATE_KEY>"'),
])
def test_redaction_keeps_the_syntax(text: str, lang: str, expected: str) -> None:
    assert _scanner.redact(text, lang)[0] == expected


@pytest.mark.parametrize("text", [
    '__version__ = "1.2.3.4"',
    "requires = ['pkg>=2.10.1.3']",
    "oid = '1.3.6.1.4.1.311'",
    "addr = '192.0.2.1'; other = '198.51.100.7'; third = '203.0.113.200'",
    "v6 = '2001:db8::1'",
    "host = '127.0.0.1'; any = '0.0.0.0'; lan = '192.168.1.10'; ten = '10.1.2.3'",
    "dns = '8.8.8.8'",
    "x = a[1::2]; y = b[::3]; t = '12:30:45'",
    "mac = '00:1a:2b:3c:4d:5e'",
    "u = '123e4567-e89b-12d3-a456-426614174000'",
    "sha = '9fceb02d0ae598e95dc970b74767f19372d61af8'",
    "digest = '900150983cd24fb0d6963f7d28e17f72'",
    "contact = 'someone@example.com'  # also bob@test.example",
    "remote = 'git@github.com:org/repo.git'",
    "@property\ndef password(self):\n    return self._password",
    "password = getpass.getpass()\npassword = None\npassword = os.environ['PW']",
    'password = "${DB_PASSWORD}"\nsecret = "{secret}"\npwd = "%(pwd)s"',
    "password = '<PASSWORD>'",
    "def check(password):\n    if password == '':\n        return False",
    "x = y @ z.weights",
])
def test_not_a_secret(text: str) -> None:
    assert kinds(text) == []


def test_hash_test_vectors_without_key_names_are_kept() -> None:
    # hashlib's tests: digests are not assigned to key-like names; entropy alone is no signal.
    text = ("self.check('sha256', b'abc',\n"
            "           'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')")
    assert kinds(text) == []


def test_allow_glob_skips_a_file_with_hmac_vectors() -> None:
    text = "key = 'a3f9c2e17b5d4086f1e2d3c4b5a69788'\n"
    assert kinds(text) == ["high_entropy_secret"]
    source = SourceFile(root="/r", path="Lib/test/test_hmac.py", lang="python", text=text,
                        sha256="0")
    counts: Counter[str] = Counter()
    scrub = SeedScrubber.for_file(source, "redact", ("*/test_hmac.py",), counts)
    record = Record.from_seed(text, "python", {"path": source.path})
    assert scrub(record) is record
    assert counts == {"secrets_allowed_files": 1}


def test_seed_redaction_records_kinds_never_values() -> None:
    text = 'token = "' + "gh" + "p_" + "a" * 12 + "B" * 12 + "9" * 12 + '"\n'
    source = SourceFile(root="/r", path="a.py", lang="python", text=text, sha256="0")
    counts: Counter[str] = Counter()
    scrub = SeedScrubber.for_file(source, "redact", (), counts)
    out = scrub(Record.from_seed(text, "python", {"path": "a.py"}))
    assert out.seed == 'token = "<API_KEY>"\n'
    assert out.meta["provenance"]["secrets"] == {"github_token": 1}
    assert out.id != Record.from_seed(text, "python", {}).id
    assert counts == {"secret_github_token": 1, "secrets_redacted": 1}


def test_private_key_block_keeps_line_numbers() -> None:
    pem = FILES["app/settings.py"]
    out, n = redact_blocks_keep_lines(pem)
    assert n == 1
    assert out.count("\n") == pem.count("\n")
    assert "<PRIVATE_KEY>" in out and "PRIVATE KEY-----" not in out
    ast.parse(out)


def test_window_inside_a_key_block_carries_nothing() -> None:
    from secrets_corpus import PEM_BODY

    text = "x = 1\nKEY = '''" + "\n".join(["-----BEGIN RSA PRIVATE KEY-----", *PEM_BODY,
                                          "-----END RSA PRIVATE KEY-----"]) + "'''\n"
    source = SourceFile(root="/r", path="k.py", lang="python", text=text, sha256="0")
    scrub = SeedScrubber.for_file(source, "redact", (), Counter())
    lines = scrub.source.text.splitlines()
    assert len(lines) == len(text.splitlines())
    window = "\n".join(lines[3:6])  # starts inside the block
    assert all(body not in window for body in PEM_BODY)


def test_redacted_python_still_parses() -> None:
    for path, text in FILES.items():
        if path.endswith(".py"):
            ast.parse(text)
            ast.parse(_scanner.redact(text, "python")[0])


def test_keep_values_survive_the_corpus() -> None:
    out = _scanner.redact(FILES["app/settings.py"], "python")[0]
    for value in KEEP:
        assert value in out


def test_policy_rows_redact_or_drop() -> None:
    def rows() -> list[Record]:
        return [Record(id="1", instruction="mail jane.doe@acme-corp.com", response="ok"),
                Record(id="2", instruction="add two numbers", response="a + b")]

    redact = SecretsPolicy("redact")
    out = list(redact.rows(rows()))
    assert [r.instruction for r in out] == ["mail <EMAIL>", "add two numbers"]
    assert redact.to_dict()["found"] == {"input": {"email": 1}}
    drop = SecretsPolicy("drop")
    assert [r.id for r in drop.rows(rows())] == ["2"]
    assert drop.to_dict()["dropped"] == {"input": 1}
    off = SecretsPolicy("off")
    assert [r.instruction for r in off.rows(rows())][0] == "mail jane.doe@acme-corp.com"


def test_reply_redaction_and_meta_scrub() -> None:
    policy = SecretsPolicy()
    leak = "AK" + "IA" + "Q" * 8 + "7" * 8
    assert policy.reply(f"use {leak} here") == "use <API_KEY> here"
    record = Record(id="1", response=f"k = '{leak}'", meta={"raw": {"output": f"x {leak}"}})
    found = policy.scrub_record(record)
    assert found == {"aws_access_key": 2}
    assert leak not in record.to_json()


def test_bad_mode_is_a_config_error() -> None:
    from synth.errors import ConfigError

    with pytest.raises(ConfigError, match="--secrets"):
        SecretsPolicy("maybe")


def test_refresh_redacts_new_files_like_extract(tmp_path) -> None:
    import json
    from pathlib import Path

    from synth.config import SeedsConfig
    from synth.io.seeds import write_seeds
    from synth.seeds.extract import FileIndex, extract_seeds, write_manifest
    from synth.seeds.refresh import refresh

    corpus = tmp_path / "src"
    corpus.mkdir()
    (corpus / "a.py").write_text("def add(a, b):\n    return a + b\n", encoding="utf-8")
    run = tmp_path / "run"
    cfg = SeedsConfig(mode="file")
    counts: Counter[str] = Counter()
    index = FileIndex(run)
    write_seeds(extract_seeds([corpus], cfg, counts, (), index), run / "seeds.jsonl")
    index.commit()
    write_manifest(run, [corpus], [], cfg, counts)
    leaked = "ops@acme-corp.com"
    (corpus / "b.py").write_text(f"OWNER = '{leaked}'\n\ndef owner():\n    return OWNER\n",
                                 encoding="utf-8")
    counts = Counter()
    report = refresh(Path(run), counts)
    assert report.added == 1
    text = (run / "seeds.jsonl").read_text(encoding="utf-8")
    assert leaked not in text and "<EMAIL>" in text
    assert counts["secret_email"] == 1
    rows = [json.loads(x) for x in text.splitlines()]
    assert [r["provenance"].get("secrets") for r in rows] == [None, {"email": 1}]
    # --secrets off on a refresh applies to new and changed files only.
    (corpus / "c.py").write_text(f"X = '{leaked}'\n\ndef x():\n    return X\n",
                                 encoding="utf-8")
    refresh(Path(run), Counter(), secrets="off")
    assert (run / "seeds.jsonl").read_text(encoding="utf-8").count(leaked) == 1


def test_score_input_rows_are_redacted_before_anything_is_written(tmp_path) -> None:
    import json

    from secrets_corpus import DATASET_PLANTED, DATASET_ROWS

    from synth.config import SecretsConfig
    from synth.jobs import filters as run_filters

    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in DATASET_ROWS), encoding="utf-8")
    run = tmp_path / "run"
    stats = run_filters(run, data, "score", secrets=SecretsConfig())
    assert stats["secrets"]["found"]["input"] == dict(Counter(k for k, _ in DATASET_PLANTED))
    blob = b"".join(p.read_bytes() for p in run.rglob("*") if p.is_file())
    for _, value in DATASET_PLANTED:
        assert value.encode() not in blob
    assert b"<PASSWORD>" in blob
    dropped = run_filters(tmp_path / "run2", data, "score", secrets=SecretsConfig("drop"))
    assert dropped["kept"] == 1 and dropped["secrets"]["dropped"] == {"input": 2}


@pytest.mark.parametrize(("text", "lang", "expected"), [
    ("<password>Xm7!qP2zK</password>", "", "<password><PASSWORD></password>"),
    ("curl -u admin:Cu8Lq2Zp9 https://api.acme.io", "shell",
     "curl -u admin:<PASSWORD> https://api.acme.io"),
    ('dsn = "user:Go9pass2x@tcp(10.0.0.1:3306)/db"', "go",
     'dsn = "user:<PASSWORD>@tcp(10.0.0.1:3306)/db"'),
    ('h = {"Authorization": "Bearer q8Z2mL4xR7vN1pT6wK3yB9cF5hJ0sD2gA1"}', "python",
     'h = {"Authorization": "Bearer <TOKEN>"}'),
    ("//registry.npmjs.org/:_authToken=npm_" + "aB9c" * 9, "",
     "//registry.npmjs.org/:_authToken=<API_KEY>"),
])
def test_passwords_and_tokens_beside_a_user_or_scheme(text: str, lang: str,
                                                       expected: str) -> None:
    assert _scanner.redact(text, lang)[0] == expected


def test_a_text_met_again_is_judged_the_same_and_findings_are_never_remembered() -> None:
    scanner = SecretScanner()
    clean = "def add(a, b):\n    return a + b\n"
    dirty = 'password = "hunter2!x"'
    for _ in range(3):  # the memo of clean texts never turns a finding into a miss
        assert scanner.redact(clean, "python") == (clean, Counter())
        assert scanner.redact(dirty, "python") == ('password = "<PASSWORD>"',
                                                   Counter({"password": 1}))
    # the same text under other keyword rules is judged by those rules, not the memo
    unquoted = "password: s3cr3tP@ss99\n"
    assert scanner.redact(unquoted, "python")[1] == Counter()
    assert scanner.redact(unquoted, "yaml")[1] == Counter({"password": 1})


def test_the_clean_memo_stays_bounded_and_keeps_recent_texts() -> None:
    scanner = SecretScanner()
    n = 5 * SecretScanner.CLEAN_MEMO + 7
    for i in range(n):
        assert scanner.redact(f"x_{i} = {i}\n", "python")[1] == Counter()
    assert len(scanner._clean) + len(scanner._clean_old) <= 2 * SecretScanner.CLEAN_MEMO
    # the newest is remembered, for every language's rules (it holds no keyword)
    assert scanner._clean[f"x_{n - 1} = {n - 1}\n"] == "*"
    scanner.scan = None  # type: ignore[assignment,method-assign]  # (a scan would fail now)
    scanner._scan = None  # type: ignore[assignment,method-assign]
    assert scanner.redact(f"x_{n - 1} = {n - 1}\n", "yaml")[1] == Counter()


def test_scrub_record_walks_a_shared_exchange_once_and_copies_only_on_write() -> None:
    policy = SecretsPolicy("redact")
    exchange = {"messages": [{"role": "user", "content": "write a parser"}],
                "output": "contact ops@acme-corp.io"}
    clean_part = {"problem": "parse a date", "tests": ["assert f(1) == 1"]}
    record = Record(id="r", meta={"raw": exchange, "rounds": [{"generator": exchange}],
                                  "instance": clean_part})
    found = policy.scrub_record(record)
    # one secret in one exchange object: found (and counted) once, redacted in both places
    assert found == Counter({"email": 1})
    assert record.meta["raw"]["output"] == "contact <EMAIL>"
    assert record.meta["rounds"][0]["generator"] is record.meta["raw"]
    assert exchange["output"] == "contact ops@acme-corp.io"  # the caller's object untouched
    assert record.meta["instance"] is clean_part  # a clean subtree is not copied


def test_scrub_record_skips_synth_hashes_but_not_user_columns_of_that_name() -> None:
    policy = SecretsPolicy("redact")
    email = "jane.doe@acme-corp.io"
    record = Record(id="r", instruction=f"mail {email}",
                    meta={"seed_id": email, "rounds": [{"output": f"to {email}"}]})
    found = policy.scrub_record(record)
    assert found == Counter({"email": 2})
    assert record.meta["seed_id"] == email  # synth's own field: never user text, not scanned
    assert "<EMAIL>" in record.instruction and "<EMAIL>" in record.meta["rounds"][0]["output"]
    row = Record(id="x", meta={"extra": {"seed_id": email}})
    policy.scrub_record(row, meta=False)
    assert row.meta["extra"]["seed_id"] == "<EMAIL>"


def test_no_trigger_holds_a_character_that_json_escapes() -> None:
    # trigger_free over a record's JSON stands for a scan of each of its strings only because
    # every trigger occurs unbroken in the JSON of a string holding it
    # (Record.to_json writes non-ASCII characters as they are, as json does without
    # ensure_ascii; "contraseña" written as \u00f1 would hide)
    for pattern in _automaton()[2]:
        assert json.dumps(pattern, ensure_ascii=False) == f'"{pattern}"', pattern
        record = Record(id="x", meta={"k": [f"x\n{pattern.upper()}\t"]})
        assert trigger_free(record.to_json()) is False, pattern
    assert not trigger_free(Record(id="x", input="host\n10.1.2.3").to_json())
    assert not trigger_free(Record(id="x", meta={"a": "fe80::1:2"}).to_json())
    assert trigger_free(Record(id="x", response="def add(a, b):\n    return a + b\n").to_json())


def _placed(value: str) -> list[Record]:
    """``value`` in every place a stored record holds text, beside characters JSON escapes."""
    exchange = {"messages": [{"role": "user", "content": f'say "{value}"\n'}],
                "output": f"\t{value}\\"}
    return [Record(id="s", seed=f"x = '{value}'\n", lang="python"),
            Record(id="r", response=f'k = "{value}"', lang="python"),
            Record(id="m", meta={"raw": exchange, "rounds": [{"generator": exchange}]}),
            Record(id="e", meta={"extra": {"note": f"{value}\n"}, "tests": [f"\"{value}\""]})]


@pytest.mark.parametrize(("kind", "value", "path"), PLANTED,
                         ids=[f"{k}-{p}" for k, _, p in PLANTED])
def test_a_stored_record_is_the_one_scrub_record_would_store(kind: str, value: str,
                                                            path: str) -> None:
    for record in _placed(value) + _placed(KEEP[len(value) % len(KEEP)]):
        walked = copy.deepcopy(record)
        old_found = SecretsPolicy().scrub_record(walked)
        policy = SecretsPolicy()
        stored = policy.stored(record, record.to_json())
        assert stored == walked.to_json()
        assert policy.counts.get("records", Counter()) == old_found
        assert value not in stored or not old_found


def test_a_record_without_any_trigger_is_stored_without_a_walk() -> None:
    policy = SecretsPolicy()
    record = Record(id="r", instruction="Write `add(a, b)`.", response="def add(a, b): ...",
                    meta={"rounds": [{"output": '{"problem": "Write add"}'}]})
    policy.scrub_record = None  # type: ignore[assignment,method-assign]  # (a walk would fail)
    text = record.to_json()
    assert policy.stored(record, text) is text
