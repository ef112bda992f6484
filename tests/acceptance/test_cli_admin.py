"""Setting a ledger up through the CLI: init, units, actors, workflows, the calendar."""

from __future__ import annotations

from pathlib import Path

from cli_support import REPORTER, Cli

from rectiflow.workflows import __file__ as workflows_init

SHIPPED = (Path(workflows_init).parent / "rectification.yaml").read_text("utf-8")


def test_init__idempotent_lists_and_refusals(ledger: Cli) -> None:
    again, status, units, actors, workflows, *refused = ledger.batch(
        (0, "init"),
        (0, "db", "status"),
        (0, "unit", "list"),
        (0, "actor", "list"),
        (0, "workflow", "list"),
        (2, "unit", "add", "HRB", "哈尔滨市"),
        (2, "unit", "add", "H R B", "哈尔滨市"),
        (3, "unit", "add", "SW", "孙吴县", "--parent", "HH"),
        (2, "actor", "add", "bob", "--role", "wizard"),
        (2, "actor", "add", "bob"),
        (3, "actor", "add", "bob", "--role", "owner", "--unit", "XX"),
    )
    assert "rectification@1" in again.stdout
    assert "schema revision 0008 (newest 0008): up to date" in status.stdout
    for text in ("黑龙江省", "哈尔滨市", "/HLJ/QQHR/"):
        assert text in units.stdout
    assert "supervisor, reporter" in actors.stdout
    assert "HRB" in actors.stdout
    assert "问题整改" in workflows.stdout
    for expected, result in zip(
        ("unit HRB already exists", "bad unit code", "error: no unit HH", "unknown role 'wizard'",
         "Missing option '--role'", "error: no unit XX"),
        refused, strict=True,
    ):  # fmt: skip
        assert expected in result.error


def test_workflow__validate_add_show_diagram(ledger: Cli, tmp_path: Path) -> None:
    review = tmp_path / "review.yaml"
    review.write_text(SHIPPED.replace("name: rectification", "name: review"), "utf-8")
    broken = tmp_path / "broken.yaml"
    broken.write_text(SHIPPED.replace("dest: verify", "dest: verfy"), "utf-8")
    changed = tmp_path / "changed.yaml"
    changed.write_text(review.read_text("utf-8").replace("5wd", "6wd"), "utf-8")

    # validate needs no database at all
    valid = Cli(tmp_path / "none.db").run("workflow", "validate", str(review))
    assert "ok: review@1, 6 states, 7 transitions, 5 escalation levels" in valid.stdout

    results = ledger.batch(
        (2, "workflow", "validate", str(broken)),
        (2, "workflow", "add", str(tmp_path / "missing.yaml")),
        (0, "workflow", "add", str(review)),
        (0, "workflow", "add", str(review)),
        (2, "workflow", "add", str(changed)),
        (0, "workflow", "show", "review@1"),
        (0, "workflow", "diagram", "review", "--lang", "en"),
        (2, "workflow", "diagram", "review", "--lang", "fr"),
        (3, "workflow", "show", "nope"),
        (3, "workflow", "show", "review@2"),
        (2, "workflow", "show", "review@x"),
        (0, "workflow", "list"),
        (0, "case", "open", "--unit", "HRB", "--title", "t", "--actor", REPORTER,
         "--workflow", "review@1", "--json"),
    )  # fmt: skip
    invalid, unreadable, added, added_again, immutable, shown, diagram, *rest = results
    bad_lang, no_name, no_version, bad_ref, listed, opened = rest
    assert invalid.error.startswith(f"error: {broken}:")
    assert "verfy" in invalid.error
    assert "cannot read workflow file" in unreadable.error
    assert "review@1 registered" in added.stdout
    assert "review@1 registered" in added_again.stdout
    assert "immutable" in immutable.error
    for text in ("identify (initial)", "整改落实", "high 20wd, medium 40wd", "approve_plan"):
        assert text in shown.stdout
    assert "notify_public" in shown.stdout
    assert "stateDiagram" in diagram.stdout
    assert "Rectify" in diagram.stdout
    assert "unknown language" in bad_lang.error
    assert no_name.error == "error: no workflow nope"
    assert no_version.error == "error: no workflow review@2"
    assert "NAME@VERSION" in bad_ref.error
    assert "review" in listed.stdout
    assert (opened.json()["workflow"], opened.json()["workflow_version"]) == ("review", 1)


def test_calendar__statutory_year_provisional_year_and_load(ledger: Cli, tmp_path: Path) -> None:
    table = tmp_path / "2027.csv"
    table.write_text("date,kind\n2027-01-06,holiday\n", "utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text("date,kind\n2027-02-30,holiday\n", "utf-8")
    in_2027 = ("--now", "2027-01-04T10:00")
    year_2026, opened, year_2027, loaded, year_2027_loaded, shown, refused = ledger.batch(
        (0, "calendar", "show", "2026"),
        (0, *in_2027, "case", "open", "--unit", "HRB", "--title", "t", "--actor", REPORTER,
         "--json"),
        (0, "calendar", "show", "2027"),
        (0, "calendar", "load", str(table), "--partial"),
        (0, "calendar", "show", "2027"),
        (0, *in_2027, "case", "show", "1", "--json"),
        (2, "calendar", "load", str(bad)),
    )  # fmt: skip
    for text in ("2026-10-10", "2026-10-01", "2026-02-14", "statutory"):
        assert text in year_2026.stdout  # National Day and Spring Festival, with 调休 days

    # A case opened in a year without data gets a provisional Monday-Friday deadline ...
    assert opened.json()["due_provisional"] is True
    assert opened.json()["due_at"] == "2027-01-11T23:59:59+08:00"
    assert "no holiday data for 2027" in opened.stderr
    assert "no calendar data for 2027" in year_2027.stdout
    # ... recomputed when the year is loaded: the Wednesday off moves it to 01-12.
    assert "1 provisional deadlines recomputed" in loaded.stdout
    assert "2027-01-06" in year_2027_loaded.stdout
    assert "loaded" in year_2027_loaded.stdout
    assert shown.json()["due_provisional"] is False
    assert shown.json()["due_at"] == "2027-01-12T23:59:59+08:00"
    assert "bad date" in refused.error


def test_admin__init_says_how_to_create_one_then_changes_need_it(ledger: Cli) -> None:
    import getpass

    assert "rectiflow actor add NAME --role admin" in ledger.run("init").stdout
    login = getpass.getuser()
    ledger.run("actor", "add", "root", "--role", "admin", "--os-user", login)
    assert "no admin yet" not in ledger.run("init").stdout
    assert "this ledger has an admin" in ledger.fails(6, "unit", "add", "DQ", "大庆市")
    assert "only an admin" in ledger.fails(6, "unit", "add", "DQ", "大庆市", "--actor", REPORTER)
    ledger.run("unit", "add", "DQ", "大庆市", "--parent", "HLJ", "--actor", "root")
    ledger.run("actor", "edit", REPORTER, "--os-user", "somebody-else", "--actor", "root")
    enforce = {"RECTIFLOW_ENFORCE_OS_USER": "1"}
    refused = ledger.run(
        "case", "open", "--unit", "HRB", "--title", "t", "--actor", REPORTER, code=6, env=enforce
    )
    assert f"{login} may not act as {REPORTER}: it is bound to somebody-else" in refused.stderr
    ledger.run("unit", "add", "MDJ", "牡丹江市", "--actor", "root", env=enforce)


def test_masked_url__the_password_never_printed() -> None:
    from rectiflow.cli.common import masked_url

    assert masked_url("postgresql+psycopg://ledger:s3cret@db:5432/ledger") == (
        "postgresql+psycopg://ledger:***@db:5432/ledger"
    )
    assert masked_url("sqlite:////var/ledger.db") == "sqlite:////var/ledger.db"
