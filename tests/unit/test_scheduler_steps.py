"""The scheduler's tick runs every step, whatever happened to the ones before it."""

from structlog.testing import capture_logs

from services.scheduler.bootstrap import run_steps


async def test_the_reaper_runs_even_when_the_due_check_fails():
    ran: list[str] = []

    async def due_check() -> None:
        ran.append("due_check")
        raise RuntimeError("a row the due-check cannot handle")

    async def reaper() -> None:
        ran.append("reaper")

    with capture_logs() as logs:
        await run_steps([("due_check", due_check), ("reaper", reaper)])
    assert ran == ["due_check", "reaper"]
    assert [(e["event"], e["step"]) for e in logs] == [("scheduler_step_failed", "due_check")]
    assert "a row the due-check cannot handle" in logs[0]["error"]
