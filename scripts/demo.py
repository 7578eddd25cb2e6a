"""The FieldVault demo, driven through the real command-line tools.

Run it with `./scripts/demo` (which prepares the virtualenv first). Story:
an admin sets up the archive, reps and customers; two reps enroll their
laptops; the server goes down and both keep working offline; the server comes
back and everything syncs exactly once; a customer is reassigned and moves,
with its whole visit history, from one laptop to the other.

Every step prints the command it runs and that command's real output. The
demo also checks what it shows and exits non-zero if anything is off, so it
doubles as a smoke test. Environment:
  FIELDVAULT_DEMO_DIR  working directory (default: <repo>/demo-run, wiped first)
  CI                   when set (non-empty), stop the server and exit at the end
                       instead of waiting for Ctrl-C
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import unicodedata
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RUN = Path(os.environ.get("FIELDVAULT_DEMO_DIR") or ROOT / "demo-run").resolve()
DATA = RUN / "server"
BIN = Path(sys.executable).parent
TTY = sys.stdout.isatty()
CST = timezone(timedelta(hours=8), "CST")  # the reps work in China Standard Time

MANAGER = "王建国"
REP1, REP2, REP3 = "李伟", "张敏", "David Zhou"

CSV_FIELDS = ["name", "decision_maker", "grade", "address", "phone", "industry", "size",
              "needs", "business_contact", "notes", "owner"]
# Customer cards (客户卡) imported from the company's old spreadsheet; `owner`
# empty means the shared pool (公海).
CUSTOMERS = [
    ["上海华联超市有限公司", "采购总监 周海燕", "A", "上海市黄浦区南京东路800号",
     "021-6322 4580", "零售", "120家门店", "冷链货架更新，年采购额约300万", "周海燕",
     "年底前有招标", REP1],
    ["杭州青禾食品有限公司", "总经理 沈建华", "A", "杭州市余杭区文一西路998号",
     "0571-8858 2210", "食品加工", "350人", "包装线自动化改造，两条线", "采购部 吴倩",
     "", REP1],
    ["Harbor Point Logistics Ltd.", "Operations Director Mark Ellison", "B",
     "18 Harbour Road, Wan Chai, Hong Kong", "+852 2528 3301", "Logistics", "600 staff",
     "Warehouse handheld scanners; 3-year service contract", "Grace Lam",
     "Prefers quotes in English", REP1],
    ["苏州恒通机电设备有限公司", "副总经理 陆明", "B", "苏州工业园区星湖街328号",
     "0512-6295 7731", "机械制造", "200人", "备件供应，要求48小时到货", "陆明", "", REP1],
    ["陈志强（个体户）", "陈志强", "C", "上海市闵行区漕宝路3366弄", "139 1627 8843",
     "五金批发", "个体", "小批量订货，要求送货上门", "陈志强", "", REP1],
    ["Greenfield Dental Clinic", "Dr. Sarah Whitman", "B",
     "2F, 1045 Huaihai Middle Road, Shanghai", "021-5403 9962", "Healthcare", "25 staff",
     "Sterilisation consumables, monthly delivery", "Sarah Whitman", "", REP1],
    ["南京金陵大酒店", "采购经理 孙丽", "A", "南京市鼓楼区汉中路2号", "025-8471 1888",
     "酒店", "500间客房", "客房用品年度框架协议", "孙丽", "", REP1],
    ["广州顺达汽配行", "老板 黄志明", "B", "广州市白云区机场路1388号", "020-8666 3421",
     "汽配", "30人", "进口滤清器，月结", "黄志明", "", REP2],
    ["深圳鹏远电子科技有限公司", "技术总监 刘洋", "B", "深圳市南山区科技园科苑路15号",
     "0755-2671 4402", "电子制造", "800人", "SMT产线耗材，质量追溯", "采购 何静", "", REP2],
    ["Sunrise Bakery & Cafe", "Owner Linda Park", "C", "66 Yongkang Road, Xuhui, Shanghai",
     "+86 138 1742 0056", "Food service", "12 staff", "Commercial oven service plan",
     "Linda Park", "", REP2],
    ["成都天府茶业有限公司", "董事长 杨帆", "B", "成都市锦江区春熙路99号", "028-8651 2277",
     "茶叶", "150人", "门店收银与会员系统", "杨帆", "", REP2],
    ["武汉长江建材有限公司", "采购部长 胡斌", "C", "武汉市江岸区沿江大道168号",
     "027-8277 6610", "建材", "90人", "仓储叉车租赁", "胡斌", "", REP2],
    ["Pacific Rim Trading Co.", "Managing Partner James O'Neill", "B",
     "Unit 1203, 88 Century Avenue, Pudong, Shanghai", "021-6888 1203", "Import/export",
     "40 staff", "Label printers for bonded warehouse", "Amy Xu", "", REP2],
    ["重庆山城火锅连锁", "运营总监 谭晓东", "B", "重庆市渝中区解放碑民族路188号",
     "023-6371 9900", "餐饮", "28家门店", "厨房设备维保", "谭晓东", "", REP2],
    ["王芳（个人客户）", "王芳", "C", "厦门市思明区中山路120号", "186 0592 3318", "个人",
     "", "家用净水设备", "王芳", "", REP2],
    ["BlueOcean Fitness Studio", "Founder Kevin Tan", "C",
     "3F, 500 Nanjing West Road, Shanghai", "021-6255 0500", "Fitness", "18 staff",
     "Member check-in terminals", "Kevin Tan", "", REP3],
    ["天津北辰文具店", "店长 马俊", "C", "天津市北辰区京津路301号", "022-2639 4471", "文具零售",
     "8人", "开学季备货", "马俊", "", REP3],
    ["青岛海之味水产有限公司", "总经理 于海", "B", "青岛市市北区港华路6号", "0532-8382 6600",
     "水产加工", "260人", "冷库温控监测", "于海", "", REP3],
    ["Maple Leaf Kindergarten", "Principal Helen Brooks", "C",
     "Lane 1, 2888 Hongqiao Road, Shanghai", "021-6270 2888", "Education", "45 staff",
     "Campus security cameras", "Helen Brooks", "", REP3],
    ["合肥新华书店连锁", "采购主管 吴涛", "B", "合肥市庐阳区长江中路279号", "0551-6265 2279",
     "图书零售", "36家门店", "门店盘点终端", "吴涛", "", REP3],
    ["李秀英（个人客户）", "李秀英", "C", "苏州市姑苏区观前街88号", "135 1234 6688", "个人",
     "", "老人智能手环", "李秀英", "", REP3],
    ["Oriental Pearl Printing Co.", "GM Victor Lu", "B",
     "1500 Jiangchang Road, Jing'an, Shanghai", "021-5665 1500", "Printing", "120 staff",
     "Wide-format printer maintenance", "Victor Lu", "", REP3],
    ["西安古城旅游用品有限公司", "经理 高峰", "C", "西安市碑林区南大街56号", "029-8721 5566",
     "旅游用品", "60人", "景区导览机", "高峰", "广告来电线索，待分配", ""],
    ["Evergreen Office Supplies", "Buyer Nancy Wu", "C",
     "77 Fuxing Road, Xuhui, Shanghai", "021-6431 7700", "Office supplies", "20 staff",
     "Toner and paper, quarterly", "Nancy Wu", "Inbound web lead", ""],
    ["长沙湘江电器商行", "老板 周建", "C", "长沙市天心区黄兴南路200号", "0731-8512 0200",
     "家电零售", "15人", "空调安装服务外包", "周建", "", ""],
    ["宁波港城物流有限公司", "总经理 郑国平", "B", "宁波市北仑区新碶明州路88号",
     "0574-8687 8800", "物流", "300人", "车队GPS与温控", "调度 陈蕾", "", REP1],
    ["厦门海岸线服装有限公司", "采购经理 林雅婷", "B", "厦门市湖里区嘉禾路388号",
     "0592-5710 3880", "服装", "400人", "吊牌打印与RFID", "林雅婷", "", REP2],
]
# Three more are added one at a time, as the office would for a new lead.
ADDED = [
    ["--name", "北京中关村创新科技有限公司", "--grade", "A", "--owner", REP2,
     "--phone", "010-8261 5500", "--industry", "软件", "--decision-maker", "CEO 刘晨",
     "--needs", "外勤数据采集终端，约200台"],
    ["--name", "Morning Star Florist", "--grade", "C", "--owner", REP3,
     "--phone", "+86 139 1688 2020", "--industry", "Retail",
     "--address", "12 Wuyuan Road, Shanghai", "--needs", "Delivery route planning"],
    ["--name", "郑州中原粮油贸易公司", "--grade", "B", "--phone", "0371-6595 8800",
     "--industry", "粮油贸易", "--needs", "仓库温湿度监控", "--notes", "展会线索，进入公海"],
]
REASSIGNED = "杭州青禾食品有限公司"


class DemoError(Exception):
    pass


# --- output -----------------------------------------------------------------------

def bold(text: str) -> str:
    return f"\033[1m{text}\033[0m" if TTY else text


def dim(text: str) -> str:
    return f"\033[2m{text}\033[0m" if TTY else text


STEP = 0


def step(title: str, *explain: str) -> None:
    global STEP
    STEP += 1
    print()
    print(bold(f"━━ {STEP}. {title} " + "━" * max(3, 74 - len(title))))
    for line in explain:
        print(dim("   " + line))


def note(text: str) -> None:
    print("   " + text)


def check(ok: bool, what: str) -> None:
    if not ok:
        raise DemoError(f"check failed: {what}")
    print(f"   ✓ {what}")


# --- running the real CLIs --------------------------------------------------------

class Actor:
    """Who runs a command: the admin (server CLI) or a rep's laptop (agent CLI)."""

    def __init__(self, label: str, env: dict[str, str]) -> None:
        self.label = label
        self.env = env


def _tool(name: str) -> str:
    local = BIN / name
    return str(local) if local.exists() else name


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDVAULT_")}
    width = shutil.get_terminal_size((150, 40)).columns
    env["COLUMNS"] = str(max(width, 120))
    if TTY:
        env["FORCE_COLOR"] = "1"
    else:
        env["NO_COLOR"] = "1"
    return env


def run(actor: Actor, *args: str, expect: int = 0, quiet: bool = False, output: bool = True,
        as_json: bool = False) -> Any:
    """Run `fieldvault[-server] ARGS` as `actor`, print it and its output, check the exit code.

    quiet: print nothing; output=False: print the command but not its (long) output."""
    tool = "fieldvault-server" if actor is ADMIN else "fieldvault"
    argv = [tool, *args] + (["--json"] if as_json else [])
    env = {**_base_env(), **actor.env}
    if as_json:
        env.pop("FORCE_COLOR", None)
        env["NO_COLOR"] = "1"
    if not quiet:
        print(f"   {dim(actor.label)} $ {shlex.join(argv)}")
    proc = subprocess.run([_tool(tool), *argv[1:]], cwd=RUN, env=env, capture_output=True,
                          text=True, timeout=120)
    if not quiet and not output:
        print("     " + dim("(output not shown)"))
    elif not quiet:
        out = (proc.stdout + proc.stderr).rstrip("\n")
        for line in out.splitlines():
            print("     " + line)
        if proc.returncode != 0:
            print(f"     {dim(f'(exit code {proc.returncode})')}")
    if proc.returncode != expect:
        raise DemoError(f"`{shlex.join(argv)}` exited {proc.returncode}, expected {expect}:\n"
                        f"{proc.stdout}{proc.stderr}")
    return json.loads(proc.stdout) if as_json and proc.returncode == 0 else proc


def fetch(actor: Actor, *args: str) -> Any:
    """The JSON answer of a command, without printing it (for the demo's own checks)."""
    return run(actor, *args, quiet=True, as_json=True)


def listed(*args: str) -> list[dict[str, Any]]:
    """Every row of an admin listing (`fieldvault-server ... --json`), for the demo's own
    checks and counts: the demo reads the archive only through the CLI."""
    rows = fetch(ADMIN, *args)
    assert isinstance(rows, list)
    return rows


def owned_by(rep: str) -> list[dict[str, Any]]:
    return listed("customer", "list", "--owner", rep)


def pad(text: str, width: int) -> str:
    """Left-justify for a terminal, where CJK characters take two cells."""
    cells = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(0, width - cells)


ADMIN = Actor("[admin]", {"FIELDVAULT_DATA": str(DATA)})


def laptop(rep: str, slug: str) -> Actor:
    return Actor(f"[{rep}'s laptop]", {"FIELDVAULT_HOME": str(RUN / f"laptop-{slug}")})


LAPTOP1 = laptop(REP1, "liwei")
LAPTOP2 = laptop(REP2, "zhangmin")


# --- the server process ------------------------------------------------------------

class Server:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = RUN / "server.log"
        self.pidfile = RUN / "server.pid"

    def start(self) -> None:
        argv = ["fieldvault-server", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        print(f"   {dim(ADMIN.label)} $ {shlex.join(argv)} &    "
              + dim(f"(log: {self.log.relative_to(RUN.parent)})"))
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                # --data as well as $FIELDVAULT_DATA, so stop_leftover_server knows it
                [_tool(argv[0]), *argv[1:], "--data", str(DATA)], cwd=RUN,
                env={**_base_env(), **ADMIN.env},
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.pidfile.write_text(str(self.proc.pid))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DemoError(f"the server exited at start:\n{self.log.read_text()}")
            try:
                health = httpx.get(self.url + "/healthz", timeout=1)
                if health.status_code == 200:
                    body = health.json()
                    repl = body.get("replication") or {}
                    extra = (f", archive replicated to {repl['replica']}"
                             if repl.get("replica") else "")
                    note(f"server is up: GET {self.url}/healthz → {body['status']}{extra}")
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise DemoError(f"the server did not come up:\n{self.log.read_text()}")

    def stop(self) -> None:
        """One SIGTERM, as a service manager would send: `serve` runs the API under
        Litestream, which stops the API, replicates the last writes, then exits."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        self.pidfile.unlink(missing_ok=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_leftover_server() -> None:
    """A previous run killed hard may have left its server running on our data: stop it."""
    pidfile = RUN / "server.pid"
    try:
        pid = int(pidfile.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, ValueError):
        return
    # Only our own server: `serve` on this demo's data directory (after Litestream's
    # exec its command line names the generated config in that directory).
    if "serve" in cmdline and str(DATA) in cmdline:
        try:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.1)
        except ProcessLookupError:
            pass


# --- the story -----------------------------------------------------------------------

# When the cards were loaded: the server holds for review a visit dated before its
# card existed or before the rep owned the customer, so the story's "hours ago"
# are compressed into the time since then.
CARDS_LOADED: list[datetime] = []
DAY_HOURS = 6.0  # the story's day: visits from 6 hours ago until now


def local_time(hours_ago: float) -> str:
    """A time in China Standard Time standing for `hours_ago` before now in the story's
    day, placed proportionally between the loading of the cards and now."""
    start, now = CARDS_LOADED[0], datetime.now(CST)
    return (start + (now - start) * (1 - min(hours_ago, DAY_HOURS) / DAY_HOURS)).isoformat()


def next_week(hour: int) -> str:
    day = (datetime.now(CST) + timedelta(days=7)).date()
    return datetime(day.year, day.month, day.day, hour, tzinfo=CST).isoformat()


def by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in rows}


def main() -> int:
    print(bold("FieldVault demo") + " — customer resources stay the company's.")
    print(dim("Everything below is the real `fieldvault-server` (admin and sync API) and "
              "`fieldvault`\n(a rep's laptop agent) talking over 127.0.0.1. Working directory: "
              f"{RUN}"))
    stop_leftover_server()
    shutil.rmtree(RUN, ignore_errors=True)
    RUN.mkdir(parents=True)
    server = Server(free_port())
    try:
        story(server)
    except DemoError as exc:
        print("\n" + bold("DEMO FAILED: ") + str(exc), file=sys.stderr)
        server.stop()
        return 1
    except KeyboardInterrupt:
        server.stop()
        print("\nInterrupted: server stopped.", file=sys.stderr)
        return 130
    except BaseException:
        server.stop()
        raise
    return wait_for_ctrl_c(server)


def story(server: Server) -> None:
    step("Create the master archive",
         "The server owns the company's single source of truth: one SQLite file in WAL mode,",
         "append-only history, and an Ed25519 key that signs every answer it gives.")
    note(dim(f"admin commands use FIELDVAULT_DATA={DATA.relative_to(RUN.parent)}; each laptop "
             "uses its own FIELDVAULT_HOME"))
    run(ADMIN, "init")

    step("Add the sales team",
         f"A manager ({MANAGER}) and three reps with tiers (senior/mid/junior).")
    run(ADMIN, "rep", "add", "--name", MANAGER, "--tier", "senior")
    run(ADMIN, "rep", "add", "--name", REP1, "--manager", MANAGER, "--tier", "senior")
    for rep, tier in ((REP2, "mid"), (REP3, "junior")):
        run(ADMIN, "rep", "add", "--name", rep, "--manager", MANAGER, "--tier", tier, quiet=True)
        note(dim(f"(and the same for {rep}, tier {tier})"))

    step("Load the customer cards (客户卡)",
         f"{len(CUSTOMERS)} cards come from a CSV (header = card fields, plus `owner`; "
         "one bad row imports nothing),",
         f"{len(ADDED)} more are added one by one. Cards without an owner go to the pool (公海).")
    csv_path = RUN / "customers.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_FIELDS)
        writer.writerows(CUSTOMERS)
    note(dim(f"{csv_path.name}, first lines:"))
    for line in csv_path.read_text(encoding="utf-8").splitlines()[:3]:
        note(dim("  " + (line if len(line) < 110 else line[:107] + "...")))
    run(ADMIN, "customer", "import", csv_path.name)
    run(ADMIN, "customer", "add", *ADDED[0])
    for extra in ADDED[1:]:
        run(ADMIN, "customer", "add", *extra, quiet=True)
    note(dim(f"(and {len(ADDED) - 1} more the same way)"))
    CARDS_LOADED.append(datetime.now(CST))
    run(ADMIN, "rep", "list")
    run(ADMIN, "customer", "list", "--owner", "pool")
    customers = by_name(listed("customer", "list"))
    check(len(customers) == len(CUSTOMERS) + len(ADDED),
          f"{len(customers)} customer cards in the archive")

    step("One-time enrollment codes",
         "The admin gives each rep a code (single use, expires, stored only as a hash).")
    code1 = run(ADMIN, "enroll-code", REP1, "--ttl", "30m", as_json=True)
    code2 = fetch(ADMIN, "enroll-code", REP2, "--ttl", "30m")
    note(dim(f"(and one for {REP2}: {code2['code']})"))

    step("Start the sync server on loopback",
         "`serve` runs the sync API under Litestream, which streams every archive write to a",
         "replica (here a directory; in production another disk or S3).",
         "Agents refuse plain http:// except to loopback; in production put it behind https://.")
    server.start()

    step("Enroll two laptops",
         "Each laptop makes its Ed25519 + X25519 key pairs, registers the public halves with the",
         "code and pins the server's signing key. Its vault is a SQLCipher file whose random key",
         "is stored only wrapped under a lease the server renews at every sync.")
    run(LAPTOP1, "enroll", "--server", server.url, "--code", code1["code"], "--name",
        "liwei-thinkpad")
    run(LAPTOP2, "enroll", "--server", server.url, "--code", code2["code"], "--name",
        "zhangmin-macbook", quiet=True)
    note(dim(f"(and {REP2}'s laptop the same way with her code)"))
    note("A code works once: a third laptop trying Li Wei's code again is refused.")
    stranger = Actor("[someone else]", {"FIELDVAULT_HOME": str(RUN / "laptop-stranger")})
    run(stranger, "enroll", "--server", server.url, "--code", code1["code"], expect=1)

    step("Enrollment ended with a first sync: each laptop holds exactly its own customers",
         "Scope = the customers currently assigned to the rep and all visits of those customers.")
    run(LAPTOP1, "customer", "list")
    mine1 = fetch(LAPTOP1, "customer", "list")
    owned1, owned2 = owned_by(REP1), owned_by(REP2)
    check({c["id"] for c in mine1} == {c["id"] for c in owned1},
          f"{REP1}'s laptop holds exactly his {len(owned1)} customers, none of anyone else's")
    mine2 = fetch(LAPTOP2, "customer", "list")
    check({c["id"] for c in mine2} == {c["id"] for c in owned2},
          f"{REP2}'s laptop holds exactly her {len(owned2)} customers")

    step("The server goes down; the reps keep working",
         "Stopping the server (SIGTERM, a clean shutdown). Look-ups and visit records work "
         "offline:",
         "every write lands in the encrypted vault and its outbox in one transaction.")
    server.stop()
    note(f"server stopped; {server.url} is unreachable now")
    run(LAPTOP1, "customer", "list", "--search", "包装线")
    qinghe = customers[REASSIGNED]
    harbor = customers["Harbor Point Logistics Ltd."]
    run(LAPTOP1, "visit", "log", "--customer", qinghe["card_no"], "--purpose", "service",
        "--summary", "检修2号包装线，更换光电传感器；沈总对响应速度满意",
        "--outcome", "客户同意下月试用新款封口机",
        "--feedback", "希望我们提供操作培训",
        "--competitors", "Krones代理也在报价，价格高约15%",
        "--location", "青禾食品余杭工厂",
        "--started-at", local_time(5), "--ended-at", local_time(3.5),
        "--next-at", next_week(10), "--next-place", "青禾食品余杭工厂",
        "--next-content", "带封口机样机现场演示")
    run(LAPTOP1, "visit", "log", "--customer", qinghe["card_no"], "--purpose", "order",
        "--summary", "与吴倩确认3台封口机订单，合同金额¥186,000", "--outcome", "已签合同",
        "--started-at", local_time(2), quiet=True)
    run(LAPTOP1, "visit", "log", "--customer", harbor["card_no"], "--purpose", "market_research",
        "--summary", "Walked the Kwai Chung warehouse with Grace Lam: 140 handheld scanners, "
        "about 30% past end of life.", "--next-at", next_week(15),
        "--next-content", "Bring a 3-year service and replacement quote",
        "--started-at", local_time(1), quiet=True)
    note(dim(f"(and 2 more visits on {REP1}'s laptop: an order at {REASSIGNED}, "
             "market research at Harbor Point)"))
    note(f"{REP1} also corrects a phone number on a card (a customer edit, offline too):")
    run(LAPTOP1, "customer", "edit", harbor["card_no"], "--phone", "+852 2528 3399",
        output=False)
    sunrise = customers["Sunrise Bakery & Cafe"]
    shunda = customers["广州顺达汽配行"]
    zgc = customers["北京中关村创新科技有限公司"]
    run(LAPTOP2, "visit", "log", "--customer", shunda["card_no"], "--purpose", "collection",
        "--summary", "收回9月货款¥42,500，余款约定月底结清", "--started-at", local_time(6))
    run(LAPTOP2, "visit", "log", "--customer", sunrise["card_no"], "--purpose", "complaint",
        "--summary", "Oven thermostat failed twice; replaced it under warranty on site.",
        "--outcome", "Linda accepted the fix and asked for a quarterly check",
        "--started-at", local_time(4), quiet=True)
    run(LAPTOP2, "visit", "log", "--customer", zgc["card_no"], "--purpose", "new_development",
        "--summary", "首次拜访，介绍外勤数据采集终端；刘总对离线同步很感兴趣",
        "--next-at", next_week(14), "--next-place", "中关村软件园", "--next-content",
        "技术交流会", "--started-at", local_time(2), quiet=True)
    note(dim(f"(and 2 more visits on {REP2}'s laptop)"))
    note("Meanwhile the office updates the needs on the same Harbor Point card (another field):")
    run(ADMIN, "customer", "edit", harbor["card_no"], "--needs",
        "Warehouse scanners (140 units); 3-year service contract; budget approved", "--by",
        "office", output=False)
    note("Trying to sync while the server is down: exit code 2, nothing lost.")
    run(LAPTOP1, "sync", expect=2)
    run(LAPTOP1, "status")
    status1 = fetch(LAPTOP1, "status")
    status2 = fetch(LAPTOP2, "status")
    check(status1["outbox"]["pending"] == 4 and status2["outbox"]["pending"] == 3,
          f"waiting to send: {status1['outbox']['pending']} changes on {REP1}'s laptop, "
          f"{status2['outbox']['pending']} on {REP2}'s")

    step("The server comes back; both laptops sync",
         "Push first (each operation carries its own id, so a retry never duplicates), then "
         "pull.",
         "The phone edit merges with the office's edit of another field: result `merged`.")
    server.start()
    run(LAPTOP1, "sync")
    run(LAPTOP2, "sync")
    run(LAPTOP1, "sync")
    note(dim("(a second sync has nothing to send: every operation went up exactly once)"))
    card = fetch(ADMIN, "customer", "show", harbor["id"])
    check(card["phone"] == "+852 2528 3399" and "budget approved" in card["needs"],
          "Harbor Point card has the rep's phone and the office's needs (field-by-field merge)")

    step("The visits are in the company's archive",
         "Every record keeps its author; the archive never hard-deletes (void with a reason "
         "instead).")
    run(ADMIN, "visit", "list")
    archived = listed("visit", "list")
    check(len(archived) == 6 and len({v["id"] for v in archived}) == 6,
          "6 visits logged offline, 6 in the archive: none lost, none duplicated")

    review(archived)

    step(f"Reassign a customer: {REASSIGNED} moves from {REP1} to {REP2}",
         "E.g. account rotation (轮岗). The ownership change is recorded; the old owner's laptop",
         "is told to evict the card at its next sync; the new owner gets it with its history.")
    run(ADMIN, "customer", "assign", qinghe["card_no"], REP2, "--reason",
        "轮岗: account rotation to the Hangzhou team")
    history = fetch(ADMIN, "customer", "show", qinghe["card_no"])["ownership_history"]
    names = {r["id"]: r["name"] for r in listed("rep", "list")}
    note("ownership history:")
    for h in history:
        note(f"  {h['at'][:19]}  {names.get(h['from_rep_id'], '—')} → "
             f"{names.get(h['to_rep_id'], 'pool')}  ({h['reason']}, by {h['by']})")
    run(LAPTOP1, "sync")
    run(LAPTOP1, "customer", "show", qinghe["card_no"], expect=1)
    gone = fetch(LAPTOP1, "visit", "list")
    check(all(v["customer_id"] != qinghe["id"] for v in gone),
          f"the card and its visits are gone from {REP1}'s laptop")
    run(LAPTOP2, "sync")
    run(LAPTOP2, "visit", "list", "--customer", qinghe["card_no"])
    arrived = fetch(LAPTOP2, "visit", "list", "--customer", qinghe["card_no"])
    authors = sorted({names[v["rep_id"]] for v in arrived})
    check(len(arrived) == 2 and authors == [REP1],
          f"{REP2}'s laptop has the card with its full history: {len(arrived)} visits, "
          f"written by {', '.join(authors)}")

    summary(server)


def review(archived: list[dict[str, Any]]) -> None:
    step("The manager reviews the visits (拜访记录审核); the office calls back (电话回访)",
         f"Staff accounts: {MANAGER} as manager of the team, and an office verifier. Every",
         "staff action names its actor (--by, or a bearer token on the staff API) and is",
         "checked and audited. A returned visit goes back to its author with the comment.")
    secret = RUN / "staff-password.txt"
    secret.write_text("demo-only password, never on argv\n", encoding="utf-8")
    secret.chmod(0o600)
    run(ADMIN, "user", "add", "--name", "wang", "--role", "manager", "--rep", MANAGER,
        "--password-file", secret.name)
    run(ADMIN, "user", "add", "--name", "office", "--role", "verifier", "--password-file",
        secret.name, quiet=True)
    note(dim("(and an office verifier, `office`, the same way)"))
    run(ADMIN, "approvals", "--manager", "wang")
    waiting = fetch(ADMIN, "approvals", "--manager", "wang")
    check(len(waiting) == len(archived), f"{len(waiting)} visits wait for the manager")
    rep1 = {r["name"]: r["id"] for r in listed("rep", "list")}[REP1]
    ours = sorted((v for v in archived if v["rep_id"] == rep1), key=lambda v: v["started_at"])
    first, second = ours[0]["id"], ours[1]["id"]
    run(ADMIN, "visit", "approve", first, "--by", "wang", output=False)
    run(ADMIN, "visit", "return", second, "--by", "wang", "--comment",
        "请补充洽谈结果 (add the outcome)", output=False)
    run(LAPTOP1, "sync")
    run(LAPTOP1, "visit", "list", "--attention")
    back = fetch(LAPTOP1, "visit", "show", second)
    check(back["status"] == "returned" and "洽谈结果" in back["review_comment"],
          f"{REP1}'s laptop shows the returned visit with the manager's comment")
    run(LAPTOP1, "visit", "edit", first, "--outcome", "late change", expect=1)
    run(LAPTOP1, "visit", "edit", second, "--outcome", "客户同意试用两周 (two-week trial agreed)",
        output=False)
    run(LAPTOP1, "sync", quiet=True)
    run(ADMIN, "visit", "approve", second, "--by", "wang", output=False)
    check(fetch(ADMIN, "visit", "list", "--rep", REP1) and all(
        v["status"] == "approved" for v in fetch(ADMIN, "visit", "list", "--rep", REP1)
        if v["id"] in (first, second)), "the corrected visit went back and was approved")
    run(ADMIN, "verify", "queue", output=False)
    queue = fetch(ADMIN, "verify", "queue")
    note(f"{len(queue)} visit(s) picked for a call-back (every order and collection, and a "
         "sample); the rep is not told before the call")
    if queue:
        picked = queue[0]
        run(ADMIN, "visit", "verify", picked["id"], "--result", "verified", "--note",
            "客户确认拜访 (customer confirmed)", "--by", "office", output=False)
    run(ADMIN, "verify", "figures")


def _vault_leaks(home: Path, needle: str) -> list[str]:
    return [p.name for p in home.iterdir() if p.is_file() and needle.encode() in p.read_bytes()]


def summary(server: Server) -> None:
    step("Summary")
    visits = listed("visit", "list")
    n = {"reps": len(listed("rep", "list")), "devices": len(listed("device", "list")),
         "customers": len(listed("customer", "list")), "visits": len(visits),
         "conflicts": len(listed("conflicts")), "quarantine": len(listed("quarantine"))}
    pool = len(listed("customer", "list", "--owner", "pool"))
    note(bold("Archive") + f" ({(DATA / 'archive.db').relative_to(RUN.parent)}): "
         f"{n['reps']} reps, {n['devices']} laptops, {n['customers']} customers "
         f"({pool} in the pool), {n['visits']} visits, {n['conflicts']} conflicts, "
         f"{n['quarantine']} quarantined")
    print()
    note(pad("", 18) + "customers owned   on laptop   visits in scope   on laptop   unsent")
    ok = True
    for rep, actor in ((REP1, LAPTOP1), (REP2, LAPTOP2)):
        owned = {c["id"] for c in owned_by(rep)}
        scope = [v for v in visits if v["customer_id"] in owned]
        status = fetch(actor, "status")
        unsent = status["outbox"]["pending"] + len(status["needs_attention"])
        note(pad(f"{rep}'s laptop", 18) + f"{len(owned):>15}{status['customers']:>12}"
             f"{len(scope):>18}{status['visits']:>12}{unsent:>9}")
        ok &= (len(owned) == status["customers"] and len(scope) == status["visits"]
               and unsent == 0)
    print()
    leaks = [f"{a.label} {f}" for a in (LAPTOP1, LAPTOP2)
             for f in _vault_leaks(Path(a.env["FIELDVAULT_HOME"]), "青禾食品")]
    try:
        sqlite3.connect(RUN / "laptop-liwei" / "vault.db").execute(
            "SELECT count(*) FROM sqlite_master").fetchone()
        plain_opens = True
    except sqlite3.DatabaseError:
        plain_opens = False
    check(ok, "each laptop holds exactly its rep's scope, and nothing is left unsent")
    check(not leaks and not plain_opens,
          "laptop files hold no plaintext ('青禾食品' not found); plain sqlite3 cannot "
          "open vault.db")
    check(n["conflicts"] == 0 and n["quarantine"] == 0,
          "no conflicts to review, nothing quarantined")


def wait_for_ctrl_c(server: Server) -> int:
    if os.environ.get("CI"):
        server.stop()
        print("\nCI is set: server stopped, demo done.")
        return 0
    home1, home2 = (a.env["FIELDVAULT_HOME"] for a in (LAPTOP1, LAPTOP2))
    rel = RUN.relative_to(Path.cwd()) if RUN.is_relative_to(Path.cwd()) else RUN
    activate = BIN / "activate"
    if activate.is_relative_to(Path.cwd()):
        activate = activate.relative_to(Path.cwd())
    print(f"""
{bold('The server keeps running at ' + server.url + ' — press Ctrl-C to stop it.')}
Try it yourself from another terminal (in {ROOT}):
  source {activate}
  export FIELDVAULT_DATA={rel}/server
  fieldvault-server customer list --owner {REP2}
  fieldvault-server customer assign FV000001 {REP2} --reason "try it"
  FIELDVAULT_HOME={rel}/{Path(home1).name} fieldvault sync     # evicts FV000001
  FIELDVAULT_HOME={rel}/{Path(home2).name} fieldvault sync     # brings it down
  FIELDVAULT_HOME={rel}/{Path(home2).name} fieldvault customer show FV000001
""")
    try:
        while server.proc is not None and server.proc.poll() is None:
            time.sleep(0.5)
        print("The server exited on its own; see " + str(server.log))
        return 1
    except KeyboardInterrupt:
        print("\nStopping the server...")
        server.stop()
        print("Stopped. The data stays in " + str(RUN) + " until the next run.")
        return 0


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # stop the server on SIGTERM just as on Ctrl-C


if __name__ == "__main__":
    # Ctrl-C must reach us even if we were started with SIGINT ignored (as background jobs are).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminated)
    sys.exit(main())
