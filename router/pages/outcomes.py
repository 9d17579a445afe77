"""What routing decided (the decision record's outcomes), as the pages say it."""

from __future__ import annotations

__all__ = ["OUTCOME_TITLES", "outcome_title"]

# What routing decided, as the pages say it (the decision record's outcomes).
OUTCOME_TITLES = {
    "routed": "распределён",
    "no_client": "клиент не найден",
    "no_active_responsible": "нет активного ответственного",
    "no_extension": "у ответственного нет добавочного",
    "busy": "ответственные заняты",
    "other_line": "линия не распределяется",
    "bad_number": "номер не распознан",
    "dry_run": "пробный режим",
    "duplicate": "повтор уведомления",
    "claimed_elsewhere": "распределён другим сервером",
    "no_lock": "другой сервер не ответил",
    "late": "не успели до конца приветствия",
    "ended": "звонок уже закончился",
    "lookup_error": "ошибка поиска",
    "not_ready": "индекс ещё не загружен",
    "pbx": "АТС не приняла команду",
    "undecided": "без решения (исходящие, внутренние)",
    "missed": "пропущен",
    "other": "прочее",
}


def outcome_title(outcome: str) -> str:
    """The Russian title of an outcome (``pbx_*``: the PBX refused, whatever the cause)."""
    if outcome.startswith("pbx_"):
        return OUTCOME_TITLES["pbx"]
    return OUTCOME_TITLES.get(outcome, outcome)
