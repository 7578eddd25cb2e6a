from datetime import timedelta

import pytest

from schema.models import CustomerCreate
from server.rules import init_archive


@pytest.fixture(params=["sqlite", "postgresql"])
def arch(request, tmp_path):
    if request.param == "sqlite":
        a = init_archive(tmp_path)
    else:
        url = request.getfixturevalue("pg_url")
        a = init_archive(tmp_path, url=url)
    yield a
    a.close()

def test_smoke(arch, tmp_path):
    rep = arch.add_rep("Li Wei")
    c = arch.add_customer(CustomerCreate(name="上海 ACME"), rep["id"])
    code, _ = arch.create_enroll_code(rep["id"], timedelta(hours=1))
    import os
    dev = arch.enroll(code, "laptop", os.urandom(32), os.urandom(32))
    page = arch.pull(rep["id"], 0, 100)
    assert [x["id"] for x in page.customers] == [c["id"]]
    lease = arch.issue_lease(dev.id, None)
    assert lease["lease"]["epoch"] == 1
    arch.revoke(rep["id"], "left", "pool")
    assert arch.audit_verify().ok
    assert arch.counts()["customers"] == 1
    assert arch.list_customers("pool")[0]["id"] == c["id"]
    assert len(arch.list_devices()) == 1
    arch.add_rep("Zhang")
    r = arch.departure_report(rep["id"])
    assert r["customers"][0]["to_name"] == "pool"
