"""The forecast's model: a least-squares trend on daily totals, times a weekly index, with its intervals.

Daily totals y_0..y_{n-1} (complete UTC days, oldest first) are divided by a weekly index s_w (the mean
ratio of each weekday's total to the trend line, normalised to average 1), and a straight line
level(t) = mean + slope * (t - t_bar) is fitted to what is left by least squares. A day t is then expected
to bring s_w(t) * level(t). The residuals' standard deviation sigma (in deseasonalised units, with the
parameters' degrees of freedom taken off) gives the interval: a sum over future (parts of) days has the
variance of the fitted line at those days plus each day's own noise, and the interval is that sum
+- Student's t (95%) standard deviations. Rules, so little history does not read as a pattern:
the trend needs TREND_MIN_DAYS of history (else the level is the mean), the weekly index WEEKLY_MIN_DAYS
(two of every weekday).
"""
import math
from dataclasses import dataclass

TREND_MIN_DAYS = 7
WEEKLY_MIN_DAYS = 14
_Z = 1.959964  # the normal distribution's two-sided 95% point
_FLAT = (1.0,) * 7


def t_quantile(df):
    """Student's t two-sided 95% point for `df` degrees of freedom (Cornish-Fisher, within 1% for df >= 3)."""
    if df >= 1e6:
        return _Z
    z = _Z
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2) \
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)


@dataclass(frozen=True)
class Fit:
    """A fitted series: day t's expected total is index[(weekday0 + t) % 7] * level(t)."""

    days: int
    mean: float
    slope: float
    t_bar: float
    sxx: float
    sigma: float
    df: float
    weekday0: int
    index: tuple = _FLAT

    @property
    def weekly(self):
        return self.index != _FLAT

    def season(self, t):
        return self.index[(self.weekday0 + t) % 7]

    def level(self, t):
        return self.mean + self.slope * (t - self.t_bar)

    def expected(self, t):
        return self.season(t) * max(0.0, self.level(t))

    def project(self, parts):
        """(expected, low, high) of the sum over `parts`, [(day t, share of that day still to come)]."""
        if not self.days:
            return 0.0, 0.0, 0.0
        expected = sum(share * self.expected(t) for t, share in parts)
        weights = sum(share * self.season(t) for t, share in parts)
        spread = sum(share * self.season(t) * (t - self.t_bar) for t, share in parts)
        line = weights**2 / self.days + (spread**2 / self.sxx if self.sxx and self.slope else 0.0)
        noise = sum(share * self.season(t) ** 2 for t, share in parts)  # a share of a day: that share of its variance
        half = t_quantile(self.df) * self.sigma * math.sqrt(line + noise)
        return expected, max(0.0, expected - half), expected + half


def _line(values):
    """(mean, slope, t_bar, sxx) of the least-squares line through values[t]."""
    n = len(values)
    t_bar = (n - 1) / 2
    sxx = sum((t - t_bar) ** 2 for t in range(n))
    mean = sum(values) / n
    slope = sum((t - t_bar) * (v - mean) for t, v in enumerate(values)) / sxx if sxx else 0.0
    return mean, slope, t_bar, sxx


def weekly_index(daily, weekday0, rounds=3):
    """Each weekday's mean ratio of its totals to the trend line, normalised to average 1 (Monday first).
    The line is fitted again to the totals divided by the index so far, a few rounds: a first line through
    raw totals leans toward whichever weekdays the history starts and ends on."""
    index = _FLAT
    for _ in range(rounds):
        mean, slope, t_bar, _ = _line([v / index[(weekday0 + t) % 7] for t, v in enumerate(daily)])
        ratios = [[] for _ in range(7)]
        for t, value in enumerate(daily):
            trend = mean + slope * (t - t_bar)
            if trend > 0:
                ratios[(weekday0 + t) % 7].append(value / trend)
        means = [sum(r) / len(r) if r else 1.0 for r in ratios]
        scale = sum(means) / 7
        if scale <= 0 or min(means) <= 0:
            return _FLAT  # a weekday that never has traffic cannot scale a trend; treat as no pattern
        index = tuple(m / scale for m in means)
    return index


def fit(daily, weekday0, weekly=True):
    """Fit the model to daily totals whose first day is weekday `weekday0` (0 = Monday)."""
    n = len(daily)
    if not n:
        return Fit(0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, weekday0)
    index = weekly_index(daily, weekday0) if weekly and n >= WEEKLY_MIN_DAYS else _FLAT
    plain = [v / index[(weekday0 + t) % 7] for t, v in enumerate(daily)]
    mean, slope, t_bar, sxx = _line(plain)
    if n < TREND_MIN_DAYS:
        slope = 0.0
    parameters = 1 + (slope != 0.0 or n >= TREND_MIN_DAYS) + (6 if index != _FLAT else 0)
    df = n - parameters
    residuals = [v - (mean + slope * (t - t_bar)) for t, v in enumerate(plain)]
    if df >= 1:
        sigma = math.sqrt(sum(r * r for r in residuals) / df)
    else:
        sigma, df = mean, 1.0  # one day says nothing of its spread: an interval as wide as the day itself
    return Fit(n, mean, slope, t_bar, sxx, sigma, float(df), weekday0, index)
