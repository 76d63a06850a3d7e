"""A corpus planted with realistic FAKE secrets and personal data, for tests and benchmarks.

Every value is built at import time from a seeded RNG and split literals, so no token-shaped
string sits in this repository's source (secret scanners on pushes stay quiet) and every run
plants the same values. ``PLANTED`` lists (kind, value, file): the kind is what
:mod:`synth.filters.secrets` must count it as. ``DATASET_ROWS`` carries YAML/.env content, which
``seeds extract`` does not read (not code), through an instruction dataset (``-i``).
``KEEP`` are look-alikes that must survive untouched.
"""

from __future__ import annotations

import random
from pathlib import Path

_rng = random.Random(16)
_UP = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOW = "abcdefghijklmnopqrstuvwxyz"
_DIG = "0123456789"
_ALNUM = _UP + _LOW + _DIG


def _r(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


def _b64(n: int) -> str:
    return _r(n, _ALNUM + "+/")


AWS_ID_1 = "AK" + "IA" + _r(16, _UP + _DIG)
AWS_ID_2 = "AS" + "IA" + _r(16, _UP + _DIG)
AWS_SECRET = _b64(40)
GITHUB = "gh" + "p_" + _r(36)
GITLAB = "gl" + "pat-" + _r(20)
SLACK = "xo" + "xb-" + _r(10, _DIG) + "-" + _r(12, _DIG) + "-" + _r(24, _LOW + _DIG)
SLACK_HOOK = ("https://hooks.slack.com/services/T" + _r(10, _UP + _DIG) + "/B"
              + _r(10, _UP + _DIG) + "/" + _r(24))
STRIPE = "sk" + "_live_" + _r(24)
SENDGRID = "S" + "G." + _r(22) + "." + _r(43)
GCP_KEY = "AI" + "za" + "Sy" + _r(33, _ALNUM + "_-")
AZURE_KEY = _b64(86) + "=="
JWT = ("ey" + "JhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6"
       "IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ." + _r(43, _ALNUM + "_-"))
PEM_BODY = [_b64(64) for _ in range(6)] + [_b64(24) + "=="]
PEM = ("-----BEGIN RSA " + "PRIVATE KEY-----\n" + "\n".join(PEM_BODY)
       + "\n-----END RSA " + "PRIVATE KEY-----")
SSH_BODY = [_b64(70) for _ in range(4)]
SSH_PEM = ("-----BEGIN OPENSSH " + "PRIVATE KEY-----\n" + "\n".join(SSH_BODY)
           + "\n-----END OPENSSH " + "PRIVATE KEY-----")
SA_BODY = [_b64(64) for _ in range(3)]
SA_PEM_ESCAPED = ("-----BEGIN " + "PRIVATE KEY-----\\n" + "\\n".join(SA_BODY)
                  + "\\n-----END " + "PRIVATE KEY-----\\n")
PG_PASSWORD = "Vx9k" + _r(8)
MONGO_PASSWORD = "Mq7R" + _r(8)
CONN_PASSWORD = "Pa55" + _r(6) + "!Q7"
PY_PASSWORD = "hunter2" + _r(5) + "!9"
JAVA_PASSWORD = "Tr0ub4dor&" + _r(4)
GO_PASSWORD = "Zx8!" + _r(8)
SH_PASSWORD = "Sh3ll#" + _r(6)
CLIENT_SECRET = "s3cr3t-" + _r(10)
JS_TOKEN = _r(32)
PY_TOKEN = _r(40, _DIG + "abcdef")
EMAILS = ["jane.doe@acme-corp.com", "ops-team@bigcorp.io", "r.smith@university.edu",
          "dev.lead@startup.co.uk"]
IPS = ["93.184.216.34", "52.14.201.77", "151.101.1.69", "2a03:2880:f12f:83:face:b00c:0:25de"]
YAML_PASSWORD = "yAmL" + _r(8) + "!2"
ENV_PASSWORD = "EnvP4ss#" + _r(6)
ENV_AWS = "AK" + "IA" + _r(16, _UP + _DIG)
ENV_EMAIL = "billing@acme-payments.com"
YAML_IP = "34.117.59.81"
# What a fake model puts into its replies (tests/fake_openai.py --leak).
LEAK = "gh" + "o_" + _r(36)

FILES: dict[str, str] = {
    "app/settings.py": f'''"""Settings for the billing service (maintainer: {EMAILS[0]})."""

import os

AWS_ACCESS_KEY_ID = "{AWS_ID_1}"
aws_secret_access_key = "{AWS_SECRET}"
SLACK_BOT = "{SLACK}"
DATABASE_URL = "postgres://billing:{PG_PASSWORD}@db.acme-corp.com:5432/billing"
password = "{PY_PASSWORD}"
client_secret = "{CLIENT_SECRET}"
upload_token = "{PY_TOKEN}"
PRIMARY_HOST = "{IPS[0]}"
LOCAL = "127.0.0.1"
DOCS_HOST = "192.0.2.10"
VERSION = "1.2.3.4"
REQUEST_ID = "123e4567-e89b-12d3-a456-426614174000"
COMMIT = "9fceb02d0ae598e95dc970b74767f19372d61af8"
SUPPORT = "help@example.com"

DEPLOY_KEY = """{PEM}"""


def connect():
    return os.environ.get("DB_PASSWORD")
''',
    "app/service_account.py": f'''import json

CREDENTIALS = {{
    "type": "service_account",
    "project_id": "acme-prod",
    "private_key": "{SA_PEM_ESCAPED}",
    "client_email": "deployer@acme-prod.iam.gserviceaccount.com",
}}


def load():
    return json.dumps(CREDENTIALS)
''',
    "web/client.js": f'''// API client; questions to {EMAILS[1]}
const GITHUB_TOKEN = "{GITHUB}";
const mapsKey = '{GCP_KEY}';
const apiToken = "{JS_TOKEN}";
const session = '{JWT}';

export function headers() {{
  return {{ Authorization: `Bearer ${{GITHUB_TOKEN}}`, "X-Session": session }};
}}
''',
    "svc/main.go": f'''package main

// Owner: {EMAILS[3]}
import "fmt"

func main() {{
	dbPassword := "{GO_PASSWORD}"
	token := "{GITLAB}"
	mongo := "mongodb://root:{MONGO_PASSWORD}@mongo.acme-corp.com:27017/app"
	peer := "{IPS[3]}"
	fmt.Println(dbPassword, token, mongo, peer)
}}
''',
    "jvm/Config.java": f'''package com.acme;

/** Config; contact {EMAILS[2]}. */
public class Config {{
    static final String STRIPE = "{STRIPE}";
    static final String SQL = "Server=tcp:sql.acme-corp.com,1433;Database=app;User Id=sa;Password={CONN_PASSWORD};";
    static final String BLOB = "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={AZURE_KEY};EndpointSuffix=core.windows.net";
    String dbPassword = "{JAVA_PASSWORD}";
    String edge = "{IPS[2]}";
}}
''',  # noqa: E501
    "ops/deploy.sh": f'''#!/bin/bash
# Deploy script; alerts go to {EMAILS[1]}
export AWS_ACCESS_KEY_ID={AWS_ID_2}
export SENDGRID_API_KEY={SENDGRID}
export DB_PASSWORD={SH_PASSWORD}
SLACK_HOOK="{SLACK_HOOK}"
ssh deploy@{IPS[1]} 'systemctl restart app'
cat > /tmp/id_deploy <<'EOF'
{SSH_PEM}
EOF
''',
    "conf/app.yaml": f"database:\n  password: {YAML_PASSWORD}\n  host: {YAML_IP}\n",
    "conf/.env": f"DB_PASSWORD={ENV_PASSWORD}\nAWS_ACCESS_KEY_ID={ENV_AWS}\n",
}

PLANTED: list[tuple[str, str, str]] = [
    ("aws_access_key", AWS_ID_1, "app/settings.py"),
    ("aws_access_key", AWS_ID_2, "ops/deploy.sh"),
    ("aws_secret_key", AWS_SECRET, "app/settings.py"),
    ("slack_token", SLACK, "app/settings.py"),
    ("slack_webhook", SLACK_HOOK, "ops/deploy.sh"),
    ("url_password", PG_PASSWORD, "app/settings.py"),
    ("url_password", MONGO_PASSWORD, "svc/main.go"),
    ("password", PY_PASSWORD, "app/settings.py"),
    ("password", GO_PASSWORD, "svc/main.go"),
    ("password", JAVA_PASSWORD, "jvm/Config.java"),
    ("password", SH_PASSWORD, "ops/deploy.sh"),
    ("secret", CLIENT_SECRET, "app/settings.py"),
    ("high_entropy_secret", PY_TOKEN, "app/settings.py"),
    ("high_entropy_secret", JS_TOKEN, "web/client.js"),
    ("private_key", PEM_BODY[3], "app/settings.py"),
    ("private_key", SA_BODY[1], "app/service_account.py"),
    ("private_key", SSH_BODY[2], "ops/deploy.sh"),
    ("github_token", GITHUB, "web/client.js"),
    ("gitlab_token", GITLAB, "svc/main.go"),
    ("gcp_api_key", GCP_KEY, "web/client.js"),
    ("jwt", JWT, "web/client.js"),
    ("stripe_key", STRIPE, "jvm/Config.java"),
    ("sendgrid_key", SENDGRID, "ops/deploy.sh"),
    ("azure_storage_key", AZURE_KEY, "jvm/Config.java"),
    ("connection_password", CONN_PASSWORD, "jvm/Config.java"),
    ("email", EMAILS[0], "app/settings.py"),
    ("email", EMAILS[1], "web/client.js"),
    ("email", EMAILS[1], "ops/deploy.sh"),
    ("email", EMAILS[2], "jvm/Config.java"),
    ("email", EMAILS[3], "svc/main.go"),
    ("email", "deployer@acme-prod.iam.gserviceaccount.com", "app/service_account.py"),
    ("ip_address", IPS[0], "app/settings.py"),
    ("ip_address", IPS[1], "ops/deploy.sh"),
    ("ip_address", IPS[2], "jvm/Config.java"),
    ("ip_address", IPS[3], "svc/main.go"),
]

# YAML/.env content (not code: extraction skips those files) reaches synth as dataset rows.
DATASET_ROWS = [
    {"instruction": "Explain this config:\n" + FILES["conf/app.yaml"], "input": "",
     "output": "It sets the database password and host."},
    {"instruction": "What does this .env do?\n" + FILES["conf/.env"], "input": "",
     "output": f"It sets credentials; mail {ENV_EMAIL} if they leak."},
    {"instruction": "Write a function that adds two numbers.", "input": "",
     "output": "def add(a, b):\n    return a + b"},
]
DATASET_PLANTED: list[tuple[str, str]] = [
    ("password", YAML_PASSWORD), ("ip_address", YAML_IP), ("password", ENV_PASSWORD),
    ("aws_access_key", ENV_AWS), ("email", ENV_EMAIL),
]

# Look-alikes that are not secrets: they must come through unchanged.
KEEP = ["127.0.0.1", "192.0.2.10", '"1.2.3.4"', "123e4567-e89b-12d3-a456-426614174000",
        "9fceb02d0ae598e95dc970b74767f19372d61af8", "help@example.com"]


def write_corpus(root: Path) -> Path:
    """Write :data:`FILES` under ``root``; returns ``root``."""
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root
