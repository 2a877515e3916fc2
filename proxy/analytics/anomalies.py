"""Anomalies: the hours of a window whose volume, errors, latency or tokens stand far outside the trailing ones."""
import statistics
from datetime import timedelta

from .facts import facts, plan, totals
from .reports import buckets
from .window import Window


def anomalies(window, baseline_hours=24, threshold=3.0):
    """Hours whose volume, error rate, latency or tokens stand far outside the trailing baseline."""
    widened = Window(window.start - timedelta(hours=baseline_hours), window.end, window.model, window.route,
                     window.status, window.client)
    source = facts(widened, plan(widened))
    stats = {row["hour"]: (row["requests"], row["errors"] or 0, row["latency_sum"] / row["requests"],
                           row["total_tokens"] or 0) for row in totals(source, source.c.hour)}
    hours = list(buckets(widened, "hour"))
    found = []
    for position, hour in enumerate(hours):
        if position < baseline_hours or hour < window.start.strftime("%Y-%m-%d %H:00:00"):
            continue
        trailing = [stats.get(h, (0, 0, None, 0)) for h in hours[position - baseline_hours:position]]
        current = stats.get(hour, (0, 0, None, 0))
        reasons = _outliers(current, trailing, threshold)
        if reasons:
            found.append({"hour": hour.replace(" ", "T") + "Z", "requests": current[0], "reasons": reasons})
    return {"window": window.describe(), "baseline_hours": baseline_hours, "threshold_sigma": threshold,
            "anomalies": found}


def _outliers(current, trailing, threshold):
    count, errs, latency, tokens = current
    measures = {
        "requests": (count, [t[0] for t in trailing], 1.0),
        "total_tokens": (tokens, [t[3] for t in trailing], 10.0),
    }
    if count >= 10:
        measures["error_rate"] = (errs / count, [t[1] / t[0] for t in trailing if t[0] >= 10], 0.02)
    if latency is not None:
        measures["latency_ms_avg"] = (latency, [t[2] for t in trailing if t[2] is not None], None)
    reasons = []
    if sum(1 for t in trailing if t[0]) < 6:
        return reasons  # fewer than six active hours behind it: too little history to call anything unusual
    for name, (value, history, floor) in measures.items():
        if len(history) < 6:
            continue
        mean = statistics.fmean(history)
        spread = max(statistics.pstdev(history), floor if floor is not None else 0.1 * abs(mean), 1e-9)
        score = (value - mean) / spread
        if abs(score) >= threshold:
            direction = "above" if score > 0 else "below"
            reasons.append({"metric": name, "value": round(value, 4), "baseline_mean": round(mean, 4),
                            "baseline_std": round(statistics.pstdev(history), 4), "z": round(score, 2),
                            "reason": f"{name} {round(value, 2)} is {abs(round(score, 1))} sigma {direction} "
                                      f"the trailing {len(history)}-hour mean of {round(mean, 2)}"})
    return reasons
