from datetime import UTC, datetime

from sqlalchemy import Engine

from outdial.store import dnc


def test_add_counts_only_new_numbers_and_remove_counts_removed(engine: Engine) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        assert dnc.add(conn, ["+12125550100", "+12125550101", "+12125550100"], "t", now) == 2
        assert dnc.add(conn, ["+12125550100", "+12125550102"], "t", now) == 1
        assert dnc.listed(conn, ["+12125550100", "+12125550199"]) == {"+12125550100"}
        assert dnc.is_listed(conn, "+12125550102")
        assert dnc.remove(conn, ["+12125550100", "+12125550199"]) == 1
        assert not dnc.is_listed(conn, "+12125550100")
