"""The authorization matrix: every role against every staff route, on a real server.

The routes are found by introspecting the app (each `/v1/staff` route's RoleCheck
dependency names its action), so a new route is walked without touching this file;
one that forgets its `require(action)` fails here. docs/RULES.md's table must be
`access.MATRIX`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from schema.enums import StaffRole
from schema.models import CustomerCreate, CustomerPatch, PushRequest
from server.app import create_app
from server.rules.access import MATRIX
from server.settings import Settings
from server.staff_auth import RoleCheck

from .harness import (
    ServerProcess,
    archive,
    customer_update,
    init_server,
    new_id,
    op,
    visit_create,
)

ROOT = Path(__file__).resolve().parent.parent
ROLES = list(StaffRole)
PLACEHOLDER = "no-such-thing"

# Bodies that get a route past validation to its rule; any other POST gets `{}` (an
# allowed role may then see 422: enough to prove the role check let it through).
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/staff/users/{user}/tokens"): {"name": "probe"},
}

# A manager acting on a record of a rep outside their team: (method, path, body).
# The placeholders name one rep's records: `{rep}` (id), `{customer}` (a card they
# own), `{visit}`, `{plan}` (their plan for today), `{conflict}` (an open conflict on
# their card), `{day}` (today) and `{manager}` (the staff manager heading the rep).
# Each line runs once on a rep outside the manager's team (403 `outside_team`) and once
# on one inside it (never a 401 or 403). Strings in a body are filled in the same way.
OUTSIDE_TEAM: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/staff/reps/{rep}/devices", None),
    ("GET", "/v1/staff/visits/{visit}", None),
    ("POST", "/v1/staff/visits/{visit}/approve", {}),
    ("POST", "/v1/staff/visits/{visit}/return", {"comment": "probe"}),
    ("GET", "/v1/staff/approvals?manager={manager}", None),
    ("GET", "/v1/staff/disputes?manager={manager}", None),
    ("GET", "/v1/staff/callbacks/figures?rep={rep}", None),
    ("POST", "/v1/staff/conflicts/{conflict}/resolve", {"keep": "server"}),
    ("GET", "/v1/staff/customers?owner={rep}", None),
    ("GET", "/v1/staff/customers/{customer}", None),
    ("POST", "/v1/staff/customers/{customer}/lock", {"reason": "probe"}),
    ("POST", "/v1/staff/customers/{customer}/unlock", {"reason": "probe"}),
    # To the rep who owns it already: inside the team nothing moves.
    ("POST", "/v1/staff/customers/{customer}/assign", {"rep": "{rep}", "reason": "probe"}),
    ("POST", "/v1/staff/distribute", {"to_reps": ["{rep}"], "dry_run": True}),
    ("POST", "/v1/staff/distribute", {"to_team": "{manager}", "dry_run": True}),
    ("GET", "/v1/staff/pool/warnings?rep={rep}", None),
    ("GET", "/v1/staff/plans?rep={rep}", None),
    ("GET", "/v1/staff/plans?manager={manager}", None),
    ("GET", "/v1/staff/plans/{plan}", None),
    ("POST", "/v1/staff/plans/{plan}/approve", {}),
    ("POST", "/v1/staff/plans/{plan}/return", {"comment": "probe"}),
    ("GET", "/v1/staff/reports/daily?rep={rep}&date={day}", None),
    ("GET", "/v1/staff/reports/weekly?team={manager}&week={week}", None),
]


@dataclass
class World:
    url: str
    tokens: dict[StaffRole, str]  # one account per role; the manager has a team
    mine: dict[str, str]  # a rep in the manager's team and their records
    theirs: dict[str, str]  # the same for a rep of another manager's team
    data: Path
    lonely: str  # the token of a manager whose rep row heads nobody


def _records(data: Path, rep_name: str, manager: str, staff_manager: str) -> dict[str, str]:
    """A rep under `manager` with a laptop, a card, a submitted visit, a visit disputed
    on call-back, today's plan and an open conflict on the card, all pushed from that
    laptop; and a second card and visit that no probe touches (for the listings)."""
    arch = archive(data)
    rep = arch.add_rep(rep_name, manager, "mid")["id"]
    code, _ = arch.create_enroll_code(rep, timedelta(hours=1))
    device = arch.enroll(code, f"{rep_name} laptop", new_id()[:32].encode(),
                         new_id()[:32].encode())
    customer = arch.add_customer(CustomerCreate(name=f"{rep_name} Co"), rep)["id"]
    listed = arch.add_customer(CustomerCreate(name=f"{rep_name} Listed Co"), rep)["id"]
    visit, waiting, disputed = new_id(), new_id(), new_id()
    day = datetime.now(UTC).date().isoformat()  # the company's time zone is UTC here
    arch.edit_customer(customer, CustomerPatch(phone="021-0000 0001"), "office")
    ops = [visit_create(customer, visit, purpose="service"),
           visit_create(listed, waiting, purpose="service"),
           visit_create(listed, disputed, purpose="order"),
           op("plan.submit", day, {"day": day, "items": [
               {"customer_id": customer, "purpose": "order", "time": None}]}),
           customer_update(customer, base_rev=1, phone="021-0000 0002")]
    results = arch.push(device, list(PushRequest.model_validate({"ops": ops}).ops))
    assert [r.status for r in results] == ["accepted"] * 4 + ["conflict"], results
    arch.record_callback(disputed, "disputed", "the customer saw nobody", "the-verifier")
    (conflict,) = [c for c in arch.conflicts() if c["customer_id"] == customer]
    year, week, _ = datetime.now(UTC).isocalendar()
    return {"rep": rep, "customer": customer, "visit": visit, "plan": f"{rep}:{day}",
            "conflict": str(conflict["id"]), "day": day, "week": f"{year}-W{week:02d}",
            "manager": staff_manager, "listed": listed, "waiting": waiting,
            "disputed": disputed, "name": rep_name}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = tmp_path_factory.mktemp("authz") / "server"
    init_server(data)
    arch = archive(data)
    arch.add_rep("Boss", None, "senior")
    arch.add_rep("Other Boss", None, "senior")
    tokens = {}
    for role in ROLES:
        arch.add_staff(f"the-{role.value}", role.value, "Boss" if role == StaffRole.manager else None)
        tokens[role] = arch.create_staff_token(f"the-{role.value}", "matrix")
    arch.add_staff("the-other-manager", "manager", "Other Boss")
    arch.add_rep("Lonely Boss", None, "senior")
    arch.add_staff("the-lonely-manager", "manager", "Lonely Boss")
    lonely = arch.create_staff_token("the-lonely-manager", "matrix")
    mine = _records(data, "Team Rep", "Boss", "the-manager")
    theirs = _records(data, "Other Rep", "Other Boss", "the-other-manager")
    server = ServerProcess(data).start()
    yield World(server.url, tokens, mine, theirs, data, lonely)
    server.stop()


def _roles_checks(dependant: Dependant) -> list[RoleCheck]:
    """Every RoleCheck in a route's dependency tree (a shared instance once)."""
    found: dict[int, RoleCheck] = {}
    stack = list(dependant.dependencies)
    while stack:
        dep = stack.pop()
        if isinstance(dep.call, RoleCheck):
            found[id(dep.call)] = dep.call
        stack.extend(dep.dependencies)
    return list(found.values())


@dataclass(frozen=True)
class StaffRoute:
    method: str
    path: str
    actions: tuple[str, ...]

    def url(self, values: dict[str, str] | None = None) -> str:
        return re.sub(r"\{(\w+)(:[^}]*)?\}",
                      lambda m: (values or {}).get(m.group(1), PLACEHOLDER), self.path)


def _walk(routes: Any) -> Iterator[Any]:
    """Routes with a path, methods and a dependant; included routers are descended
    into (FastAPI versions differ in whether `app.routes` is flat)."""
    for route in routes:
        if hasattr(route, "effective_route_contexts"):
            yield from route.effective_route_contexts()
        elif isinstance(route, APIRoute):
            yield route


@pytest.fixture(scope="module")
def app_routes(world: World) -> tuple[list[StaffRoute], dict[str, Any]]:
    """The staff routes of the app, and its OpenAPI paths."""
    app = create_app(Settings(data=world.data))  # in process, only to read its routes
    try:
        found = [StaffRoute(method, route.path,
                            tuple(sorted(c.action for c in _roles_checks(route.dependant))))
                 for route in _walk(app.routes) if route.path.startswith("/v1/staff")
                 for method in sorted(route.methods)]
        return found, app.openapi()["paths"]
    finally:
        app.state.archive.close()


@pytest.fixture(scope="module")
def routes(app_routes: tuple[list[StaffRoute], dict[str, Any]]) -> list[StaffRoute]:
    return app_routes[0]


def call(world: World, method: str, url: str, token: str | None,
         body: dict[str, Any] | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    if body is None and method in ("POST", "PUT", "PATCH"):
        body = {}
    return httpx.request(method, world.url + url, headers=headers, json=body, timeout=30)


def error_of(answer: httpx.Response) -> str | None:
    try:
        body = answer.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None


def test_every_staff_route_names_exactly_one_action(
        app_routes: tuple[list[StaffRoute], dict[str, Any]]) -> None:
    routes, paths = app_routes
    assert {("GET", "/v1/staff/me"), ("GET", "/v1/staff/users")} <= {(r.method, r.path)
                                                                     for r in routes}
    wrong = [f"{r.method} {r.path}: {list(r.actions)}" for r in routes
             if len(r.actions) != 1 or r.actions[0] not in MATRIX]
    assert wrong == [], "each /v1/staff route needs exactly one `require(action)`"
    # The spec shows the same routes, each with the staff token and a documented answer.
    documented = {(m.upper(), p) for p, ops in paths.items() if p.startswith("/v1/staff")
                  for m in ops}
    assert documented == {(r.method, r.path) for r in routes}
    for route in routes:
        spec = paths[route.path][route.method.lower()]
        assert spec["tags"] == ["staff"] and {"StaffToken": []} in spec["security"], route
        ok = next(v for k, v in spec["responses"].items() if k.startswith("2"))
        # JSON answers name their model; a file (an attachment's bytes) names its types.
        assert any(c.get("schema") for c in ok["content"].values()), f"{route}: no response model"


@pytest.mark.parametrize("role", ROLES, ids=[r.value for r in ROLES])
def test_each_role_against_every_staff_route(world: World, routes: list[StaffRoute],
                                             role: StaffRole) -> None:
    wrong = []
    for route in routes:
        (action,) = route.actions
        body = BODIES.get((route.method, route.path))
        answer = call(world, route.method, route.url(), world.tokens[role], body)
        error = error_of(answer)
        if role in MATRIX[action]:
            if answer.status_code == 401 or answer.status_code >= 500 or error == "forbidden":
                wrong.append(f"{route.method} {route.path} ({action}): {answer.status_code} "
                             f"{answer.text[:200]} for an allowed {role.value}")
        elif (answer.status_code, error) != (403, "forbidden"):
            wrong.append(f"{route.method} {route.path} ({action}): {answer.status_code} "
                         f"{answer.text[:200]} for a {role.value}, who may not")
    assert wrong == []


def test_no_token_or_a_bad_one_is_401_on_every_route(world: World,
                                                     routes: list[StaffRoute]) -> None:
    for token in (None, "fvst_not-a-real-token"):
        for route in routes:
            answer = call(world, route.method, route.url(), token,
                          BODIES.get((route.method, route.path)))
            assert (answer.status_code, answer.json()["error"]) == (401, "unauthorized"), \
                f"{route.method} {route.path}"


def test_a_disabled_accounts_token_is_refused(world: World) -> None:
    admin = world.tokens[StaffRole.admin]
    made = call(world, "POST", "/v1/staff/users", admin, {"name": "leaver", "role": "verifier"})
    assert made.status_code == 201
    issued = call(world, "POST", "/v1/staff/users/leaver/tokens", admin, {"name": "erp"})
    token = issued.json()["token"]
    assert call(world, "GET", "/v1/staff/me", token).json()["name"] == "leaver"
    assert call(world, "POST", "/v1/staff/users/leaver/disable", admin).status_code == 200
    answer = call(world, "GET", "/v1/staff/me", token)
    assert (answer.status_code, answer.json()["error"]) == (401, "unauthorized")


@pytest.mark.parametrize(("method", "path", "body"), OUTSIDE_TEAM,
                         ids=[f"{m} {p}" for m, p, _ in OUTSIDE_TEAM])
def test_a_manager_outside_their_team_is_refused(world: World, method: str, path: str,
                                                 body: dict[str, Any] | None) -> None:
    manager = world.tokens[StaffRole.manager]
    answer = call(world, method, path.format(**world.theirs), manager, fill(body, world.theirs))
    assert (answer.status_code, answer.json()["error"]) == (403, "outside_team"), answer.text
    inside = call(world, method, path.format(**world.mine), manager, fill(body, world.mine))
    assert inside.status_code not in (401, 403) and inside.status_code < 500, inside.text


def test_a_manager_cannot_move_cards_across_teams(world: World) -> None:
    """Both ends of a move are checked: giving the team's card away, taking another
    team's, or dealing to a group that reaches outside the team."""
    manager = world.tokens[StaffRole.manager]
    mine, theirs = world.mine, world.theirs
    for card, to in ((mine["listed"], theirs["rep"]), (theirs["listed"], mine["rep"])):
        answer = call(world, "POST", f"/v1/staff/customers/{card}/assign", manager,
                      {"rep": to, "reason": "probe"})
        assert (answer.status_code, error_of(answer)) == (403, "outside_team"), answer.text
    dealt = call(world, "POST", "/v1/staff/distribute", manager,
                 {"to_reps": [mine["rep"], theirs["rep"]], "dry_run": True})
    assert (dealt.status_code, error_of(dealt)) == (403, "outside_team"), dealt.text
    arch = archive(world.data)
    assert arch.get_customer(mine["listed"])["owner_rep_id"] == mine["rep"]
    assert arch.get_customer(theirs["listed"])["owner_rep_id"] == theirs["rep"]


# Listings a manager sees filtered to their team: (path, list key, the row's id field,
# the row's rep field, the World record expected among the rows).
LISTINGS = [
    ("/v1/staff/approvals", "visits", "id", "rep_id", "waiting"),
    ("/v1/staff/disputes", "visits", "id", "rep_id", "disputed"),
    ("/v1/staff/customers?limit=500", "customers", "id", "owner_rep_id", "listed"),
    ("/v1/staff/plans", "plans", "id", "rep_id", "plan"),
    ("/v1/staff/conflicts?open=false", "conflicts", "id", "rep_id", "conflict"),
    ("/v1/staff/callbacks/figures", "reps", "rep_id", "rep_id", "rep"),
]


@pytest.mark.parametrize(("path", "key", "id_field", "rep_field", "record"), LISTINGS,
                         ids=[p for p, *_ in LISTINGS])
def test_a_managers_listings_hold_their_team_only(world: World, path: str, key: str,
                                                  id_field: str, rep_field: str,
                                                  record: str) -> None:
    def rows(role: StaffRole | None) -> list[dict[str, Any]]:
        answer = call(world, "GET", path, world.tokens[role] if role else world.lonely)
        assert answer.status_code == 200, answer.text
        return answer.json()[key]  # type: ignore[no-any-return]

    everyone = {str(r[id_field]) for r in rows(StaffRole.admin)}
    assert {world.mine[record], world.theirs[record]} <= everyone  # both exist
    team = rows(StaffRole.manager)
    assert world.mine[record] in {str(r[id_field]) for r in team}
    # A pool card (no owner) is the manager's to see too; another team's rows never.
    assert {r[rep_field] for r in team} <= {world.mine["rep"], None}, team
    # An empty team is nobody's records, not everybody's.
    assert {r[rep_field] for r in rows(None)} <= {None}


def fill(body: Any, values: dict[str, str]) -> Any:
    """A body with the placeholders of its strings filled in from `values`."""
    if isinstance(body, str):
        return body.format(**values)
    if isinstance(body, list):
        return [fill(v, values) for v in body]
    if isinstance(body, dict):
        return {k: fill(v, values) for k, v in body.items()}
    return body


def test_the_docs_table_is_the_matrix() -> None:
    text = (ROOT / "docs" / "RULES.md").read_text(encoding="utf-8")
    table = text.split("<!-- matrix:start -->")[1].split("<!-- matrix:end -->")[0]
    lines = [line for line in table.strip().splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["Action", *(r.value for r in ROLES), "What it covers"]
    documented = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[-1], f"{cells[0]} needs a description"
        documented[cells[0].strip("`")] = frozenset(
            role for role, cell in zip(ROLES, cells[1:-1], strict=True) if cell)
    expected = {a: frozenset(roles) for a, roles in MATRIX.items()}

    def row(action: str) -> str:
        marks = " | ".join("✓" if r in MATRIX[action] else "" for r in ROLES)
        return f"| `{action}` | {marks} | ... |"

    fix = [row(a) for a in MATRIX if documented.get(a) != expected[a]]
    assert documented == expected, (
        "docs/RULES.md 'Who may do what' differs from access.MATRIX; rows as MATRIX "
        "has them:\n" + "\n".join(fix) + f"\nnot in MATRIX: {sorted(documented.keys() - expected.keys())}")
