"""A Django process that checks numbers through the real API and answers on stdout, one JSON line per
JSON command line on stdin (tests/test_replica.py, bench/bench_replica.py).

It runs with the environment it is given (DATABASE_URL, DATABASE_REPLICA_URL), so it is the
application as deployed against a primary and a replica; `counts` says which served the checks.

Commands: {"op": "setup"} → {"key": ...}; {"op": "login", "key": ...} (the tenant and key of another
driver's setup); {"op": "suppress", "phone": ...}; {"op": "do_not_market",
"phone": ...}; {"op": "check", "phone": ...} → the answer; {"op": "bulk", "phones": [...]} → the
answer; {"op": "wait_ms", "ms": N}; {"op": "counts"}; {"op": "time", "phone": ..., "n": N} → {"ms": [...]} (each check's wall time).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import django


def main() -> None:  # noqa: C901  # one branch per command
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lanzuan.settings")
    django.setup()
    from django.conf import settings
    from django.test import Client

    from lanzuan import phones, replica
    from tenants import db_scope
    from tenants.models import Tenant
    from tenants.services import api_key_create
    from unsubscribe.donotmarket.services import platform_do_not_market_set
    from unsubscribe.suppressions.services import suppressions_add

    client = Client()
    tenant: Tenant | None = None
    headers: dict[str, str] = {}

    def check(phone: str) -> Any:
        response = client.get("/api/v1/suppressions/check", {"phone": phone}, headers=headers)
        return {"status": response.status_code, **json.loads(response.content)}

    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        answer: Any
        if op == "setup":
            with db_scope.system_scope(reason="replica test: a tenant and its key"):
                tenant = Tenant.objects.create(slug="replica", name="Replica")
                _row, key = api_key_create(tenant=tenant, name="checks")
            headers = {"Authorization": f"Api-Key {key}"}
            answer = {"key": key}
        elif op == "login":  # another process of the same application: the tenant and key of setup
            with db_scope.system_scope(reason="replica test: the tenant of the key"):
                tenant = Tenant.objects.get(slug="replica")
            headers = {"Authorization": f"Api-Key {command['key']}"}
            answer = {"ok": True}
        elif op == "suppress":
            assert tenant is not None
            phone = command["phone"]
            with db_scope.system_scope(reason="replica test: an opt-out"):
                suppressions_add(
                    tenant=tenant,
                    phone_hash=phones.tenant_phone_hash(tenant.pk, phone),
                    phone_masked=phones.mask(phone),
                    scopes=["*"],
                    channel="api",
                )
            answer = {"ok": True}
        elif op == "do_not_market":
            with db_scope.system_scope(reason="replica test: a platform-wide entry"):
                platform_do_not_market_set(e164=command["phone"], evidence={"test": True})
            answer = {"ok": True}
        elif op == "check":
            answer = check(command["phone"])
        elif op in ("bulk", "bulk_plain"):
            # "bulk" asks for consent details too: the per-number path, read through the replica.
            # "bulk_plain", a bare list, is answered from the suppression index (on the primary).
            body: dict[str, object] = {"phones": command["phones"]}
            if op == "bulk":
                body["include"] = ["consent"]
            response = client.post(
                "/api/v1/suppressions/check", body, content_type="application/json", headers=headers
            )
            answer = {"status": response.status_code, **json.loads(response.content)}
        elif op == "wait_ms":  # how long checks wait for the replica to catch up (the test's knob)
            settings.DATABASE_REPLICA_WAIT_MS = int(command["ms"])
            replica._lagging_until[0] = 0.0  # and wait again at once, even after a lag
            answer = {"ok": True}
        elif op == "counts":
            answer = replica.counts()
        elif op == "time":
            took = []
            for _ in range(int(command["n"])):
                started = time.perf_counter()
                check(command["phone"])
                took.append((time.perf_counter() - started) * 1000)
            answer = {"ms": took}
        else:
            answer = {"error": f"unknown op {op}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
