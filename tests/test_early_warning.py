"""Early warning on synthetic monthly series: a surge raises exactly one alert, flat and seasonal series none."""
from __future__ import annotations

import datetime as dt
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from sqlalchemy import func, insert, select

from casekb.cli import main
from casekb.config import PROJECT_ROOT
from kb.accounts import AuditEntry
from kb.early_warning import (IndicatorSpec, SurgeAlert, SurgeIndicator, Window, acknowledge, evaluate_all, judge,
                              last_complete_window, read_indicator_file, save_indicator)
from kb.models import DisputeCase, Organisation
from logins import add_user_with_token, csrf_token, sign_in
from search_api.app import create_app

AS_OF = dt.date(2026, 11, 1)
MONTHS = [dt.date(2024 + (10 + m) // 12, (10 + m) % 12 + 1, 1) for m in range(24)]   # 2024-11 .. 2026-10
REGIONS = ("甲区", "乙区", "丙县")
CATEGORIES = ("医疗", "邻里", "婚姻家庭")
FLAT = 20


def _count(region: str, category: str, month: dt.date) -> int:
    if (region, category, month) == ("甲区", "医疗", dt.date(2026, 10, 1)):
        return 3 * FLAT                                   # the injected surge
    if category == "婚姻家庭" and month.month in (1, 2):
        return 2 * FLAT                                   # every year's Spring Festival peak
    return FLAT


@pytest.fixture
def series(db):
    rows, n = [], 0
    for month in MONTHS:
        for region in REGIONS:
            for category in CATEGORIES:
                for i in range(_count(region, category, month)):
                    n += 1
                    rows.append({"external_id": f"s-{n}", "title": f"{category}{n}", "category": category,
                                 "region": region, "facts": "事实", "received_on": month + dt.timedelta(days=i % 28)})
    with db.engine.begin() as conn:
        conn.execute(insert(DisputeCase), rows)
    return db


def _indicator(name: str, **fields) -> IndicatorSpec:
    return IndicatorSpec(name=name, **({"threshold": 2.0} | fields))


def _watch_everything(session, **fields) -> None:
    for region in REGIONS:
        for category in CATEGORIES:
            save_indicator(session, _indicator(f"{region}{category}", categories=[category], regions=[region], **fields))


def test_a_surge_raises_exactly_the_expected_alert_once(series):
    with series.transaction() as session:
        _watch_everything(session, baseline="last_year", baseline_windows=1, rule="ratio", threshold=1.8)
        raised = evaluate_all(session, AS_OF, since=dt.date(2025, 11, 1))
        assert [(a.indicator.name, a.window_start) for a in raised] == [("甲区医疗", dt.date(2026, 10, 1))]
        [alert] = raised
        assert (alert.value, alert.baseline, alert.window_end) == (60.0, 20.0, dt.date(2026, 10, 31))
        assert alert.evidence["baseline_series"] == [{"window_start": "2025-10-01", "value": 20.0, "count": 20}]
        assert alert.evidence["rule"] == "ratio" and alert.evidence["threshold"] == 1.8
    with series.transaction() as session:
        assert evaluate_all(session, AS_OF, since=dt.date(2025, 11, 1)) == []
        assert session.scalar(select(func.count()).select_from(SurgeAlert)) == 1


def test_moving_average_and_zscore_catch_the_surge_but_not_the_season_with_a_yearly_baseline(series):
    with series.transaction() as session:
        _watch_everything(session, baseline="moving_average", baseline_windows=6, rule="zscore", threshold=3.0)
        raised = evaluate_all(session, AS_OF)
        assert [(a.indicator.name, a.window_start) for a in raised] == [("甲区医疗", dt.date(2026, 10, 1))]
    with series.transaction() as session:
        seasonal = save_indicator(session, _indicator("乙区婚姻家庭同比", categories=["婚姻家庭"], regions=["乙区"],
                                                      baseline="last_year", baseline_windows=1, threshold=1.5))
        naive = save_indicator(session, _indicator("乙区婚姻家庭环比", categories=["婚姻家庭"], regions=["乙区"],
                                                   baseline="moving_average", baseline_windows=3, threshold=1.5))
        raised = evaluate_all(session, dt.date(2026, 3, 1), since=dt.date(2025, 11, 1))
        names = {(a.indicator_id, a.window_start) for a in raised}
        assert (seasonal.id, dt.date(2026, 1, 1)) not in names
        assert (naive.id, dt.date(2026, 1, 1)) in names      # the same series does alarm without the seasonal baseline


def test_rate_metric_and_minimum_count(series):
    with series.transaction() as session:
        share = save_indicator(session, _indicator("甲区医疗占比", categories=["医疗"], regions=["甲区"], metric="rate",
                                                   rule="absolute", threshold=0.5, baseline_windows=3))
        quiet = save_indicator(session, _indicator("甲区医疗高门槛", categories=["医疗"], regions=["甲区"],
                                                   threshold=1.5, min_count=61))
        raised = evaluate_all(session, AS_OF)
        assert [(a.indicator_id, a.value) for a in raised] == [(share.id, 60 / 100)]
        assert quiet.id not in {a.indicator_id for a in raised}


def test_judge_rules():
    spec = _indicator("x", rule="zscore", threshold=2.0, min_count=3)
    assert judge(spec, 30, 30, [10, 12, 8, 10]).fired
    assert not judge(spec, 11, 11, [10, 12, 8, 10]).fired
    assert not judge(spec, 2, 2, [0, 0, 0]).fired                        # below the minimum count
    assert judge(_indicator("y", min_count=1), 5, 5, [0, 0]).fired       # from nothing to something
    assert judge(_indicator("z", rule="absolute", threshold=5), 5, 5, []).fired


def test_windows():
    assert last_complete_window("month", dt.date(2026, 11, 1)) == Window(dt.date(2026, 10, 1), dt.date(2026, 11, 1))
    assert last_complete_window("month", dt.date(2026, 11, 15)) == Window(dt.date(2026, 10, 1), dt.date(2026, 11, 1))
    week = last_complete_window("week", dt.date(2026, 11, 4))           # a Wednesday
    assert week == Window(dt.date(2026, 10, 26), dt.date(2026, 11, 2))
    assert week.year_earlier("week", 1).start.isocalendar()[1] == week.start.isocalendar()[1]


def test_the_risk_models_of_the_seeds_are_configuration(series):
    specs = read_indicator_file(PROJECT_ROOT / "config" / "risk_models.toml")
    assert [s.name for s in specs] == ["婚恋家庭风险", "邻里风险", "经济债务风险", "土地风险"]
    with series.transaction() as session:
        for spec in specs:
            save_indicator(session, spec)
        evaluate_all(session, AS_OF)        # every model evaluates against real rows


def test_cli_loads_evaluates_lists_and_acknowledges(series, settings, tmp_path):
    config = tmp_path / "indicators.toml"
    config.write_text('[[indicator]]\nname = "甲区医疗"\ncategories = ["医疗"]\nregions = ["甲区"]\n'
                      'baseline = "last_year"\nbaseline_windows = 1\nthreshold = 2.0\n', encoding="utf-8")
    runner = CliRunner(env={"CASEKB_DATABASE_URL": settings.database_url})
    result = runner.invoke(main, ["--home", str(settings.home), "alerts", "--load", str(config),
                                  "--as-of", "2026-11-01"])
    assert result.exit_code == 0, result.output
    assert "1 new alerts" in result.output and "甲区医疗 2026-10-01..2026-10-31" in result.output
    with series.sessions() as session:
        alert_id = session.scalar(select(SurgeAlert.id))
    result = runner.invoke(main, ["--home", str(settings.home), "alerts", "--ack", str(alert_id), "--by", "张科长"])
    assert result.exit_code == 0, result.output
    with series.transaction() as session:
        alert = session.get(SurgeAlert, alert_id)
        assert alert.acknowledged_by == "张科长"
        assert acknowledge(session, alert_id, "someone else").acknowledged_by == "张科长"
    bad = tmp_path / "bad.toml"
    bad.write_text('[[indicator]]\nname = "x"\nrule = "magic"\nthreshold = 1\n', encoding="utf-8")
    result = runner.invoke(main, ["--home", str(settings.home), "alerts", "--load", str(bad)])
    assert result.exit_code != 0 and "rule" in result.output


def _alerted_app(series, settings):
    """The app over the series with its one surge alert raised, a manager and a mediator signed in."""
    with series.transaction() as session:
        save_indicator(session, _indicator("甲区医疗", categories=["医疗"], regions=["甲区"], baseline="last_year",
                                           baseline_windows=1))
        [alert] = evaluate_all(session, AS_OF)
        alert_id = alert.id
        session.add(Organisation(id=1, name="甲区人民调解委员会", level="county", path="/1/"))
    app = create_app(settings)
    clients = {}
    for name, role, organisation in (("科长", "manager", None), ("调解员", "mediator", 1)):
        add_user_with_token(series, name, role, organisation)
        clients[role] = app.test_client()
        assert sign_in(clients[role], name).status_code == 302
    return clients, alert_id


def _form(client, path, **data):
    return client.post(quote(path), data={"csrf_token": csrf_token(client, "/stats"), **data})


def _spec(db, name):
    with db.sessions() as session:
        found = session.scalar(select(SurgeIndicator).where(SurgeIndicator.name == name))
        return found and found.spec()


def test_a_manager_acknowledges_an_alert_on_the_dashboard(series, settings):
    clients, alert_id = _alerted_app(series, settings)
    manager, mediator = clients["manager"], clients["mediator"]
    ack = f"/stats/alerts/{alert_id}/ack"
    assert ack in manager.get("/stats").get_data(as_text=True)
    assert ack not in mediator.get("/stats").get_data(as_text=True), "the button is for managers"
    assert _form(mediator, ack).status_code == 403
    assert manager.post(ack).status_code == 400, "a form without its CSRF token changes nothing"
    with series.sessions() as session:
        assert session.get(SurgeAlert, alert_id).acknowledged_at is None
    assert _form(manager, ack).status_code == 302
    page = manager.get("/stats").get_data(as_text=True)
    assert "已确认该预警" in page and ack not in page
    with series.sessions() as session:
        assert session.get(SurgeAlert, alert_id).acknowledged_by == "科长"
        assert session.scalar(select(AuditEntry.target).where(AuditEntry.action == "alert.ack")) == str(alert_id)


def test_a_manager_edits_and_creates_indicators_with_the_apis_validation(series, settings):
    clients, _ = _alerted_app(series, settings)
    manager, mediator = clients["manager"], clients["mediator"]
    assert "甲区医疗" in manager.get("/stats/indicators").get_data(as_text=True)
    for path in ("/stats/indicators", "/stats/indicators/甲区医疗"):
        assert mediator.get(quote(path)).status_code == 403
    assert _form(mediator, "/stats/indicators/甲区医疗", threshold="9").status_code == 403

    before = _spec(series, "甲区医疗")
    bad = _form(manager, "/stats/indicators/甲区医疗", threshold="0", rule="magic", min_count="",
                categories="医疗", regions="甲区")
    page = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "未保存" in page
    assert all(f'id="e-{field}"' in page for field in ("threshold", "rule", "min_count"))
    assert 'value="0"' in page, "the form keeps what was typed"
    assert _spec(series, "甲区医疗") == before

    edited = _form(manager, "/stats/indicators/甲区医疗", threshold="2.5", rule="zscore", min_count="3",
                   categories="医疗，邻里", regions="甲区", metric="count", window="week", baseline="moving_average",
                   baseline_windows="8", organisation_id="", enabled="on")
    assert edited.status_code == 302
    assert _spec(series, "甲区医疗") == before.model_copy(update=dict(
        threshold=2.5, rule="zscore", min_count=3, categories=["医疗", "邻里"], window="week",
        baseline="moving_average", baseline_windows=8))

    created = _form(manager, "/stats/indicators/new", name="乙区邻里", threshold="3", regions="乙区",
                    categories="邻里")
    assert created.status_code == 302 and not _spec(series, "乙区邻里").enabled, "an unticked box disables"
    again = _form(manager, "/stats/indicators/new", name="乙区邻里", threshold="5")
    assert again.status_code == 422 and _spec(series, "乙区邻里").threshold == 3
    with series.sessions() as session:
        saved = list(session.scalars(select(AuditEntry.target).where(AuditEntry.action == "indicator.save")))
    assert saved == ["甲区医疗", "乙区邻里"]
