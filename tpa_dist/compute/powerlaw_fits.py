"""The power-law fit WeightWatcher's `fit` and `fix_fingers` options choose, on one matrix's eigenvalues.

* PL (the default): the WWFit MLE with xmin by minimum KS distance (heavytail.py, vectorized);
* `clip_xmax`: WeightWatcher's fit_clipped_powerlaw — refit without the top 2, 3, … eigenvalues ("fingers", a
  finite-size effect) until alpha drops by `finger_thresh`, stopping at alpha ≤ 2; like WeightWatcher, at most
  10 clips unless `max_fingers` is at least half the eigenvalues;
* TPL (truncated power law, its exponential cutoff `Lambda`) and `xmin_peak` (xmin searched from the log-ESD's
  histogram peak): the `powerlaw` package's Fit, called exactly as WeightWatcher calls it (its pl_package =
  "powerlaw", the only one it allows for these), including its xmin range (log10 of 0.95·peak up to 1.5·peak, in
  mixed units as WeightWatcher passes them); E_TPL is TPL with `xmin_peak`. powerlaw 2 no longer takes the
  `distribution=` WeightWatcher 0.7.7 passes, so WeightWatcher's own TPL and xmin_peak fits fail under it ("failed",
  alpha -1); tpa-dist leaves that argument out there, and its tests compare these fits with powerlaw.Fit itself.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import math
import warnings

import numpy as np

from tpa_dist.compute.heavytail import EVALS_THRESH, MIN_EVALS, PowerLawFit, fit_columns, fit_power_law
from tpa_dist.settings import RmtSettings

DEFAULT_MAX_FINGERS = 10  # WeightWatcher's, used unless max_fingers ≥ half the eigenvalues
MIN_ALPHA = 2.0  # clip_xmax stops clipping once alpha falls to this


def chosen_fit(evals: np.ndarray, settings: RmtSettings, device: str = "cpu") -> dict[str, object]:
    """The fit's columns (alpha, D, xmin, xmax, num_pl_spikes, alpha_weighted, log_alpha_norm, sigma, status,
    tpl_lambda (its Lambda), num_fingers, raw_alpha) over ascending eigenvalues `evals`; status "failed" and NULLs where none."""
    kind = "TPL" if settings.fit in ("TPL", "E_TPL") else "PL"
    fingers = "xmin_peak" if settings.fit == "E_TPL" else settings.fix_fingers
    named = fingers != "none" and settings.fit != "E_TPL"
    out: dict[str, object] = {"fit": settings.fit + (f"+{fingers}" if named else "")}
    data = evals[evals > EVALS_THRESH]
    if len(evals) < MIN_EVALS or len(data) < 2 or not data[-1] > data[0]:
        return {**out, "status": "failed"}
    if kind == "PL" and fingers != "xmin_peak":
        if fingers == "clip_xmax":
            limit = settings.max_fingers if settings.max_fingers >= 0.5 * len(evals) else DEFAULT_MAX_FINGERS
            fit, num, raw = _clipped(data, limit, settings.finger_thresh, device)
            out.update(num_fingers=num, raw_alpha=raw.alpha if raw is not None else None)
        else:
            fit = fit_power_law(data, device)
        if fit is None:
            return {**out, "status": "failed"}
        return {**out, **fit_columns(fit, evals), "sigma": fit.sigma, "status": "success"}
    return {**out, **_powerlaw_package(evals, data, kind, fingers == "xmin_peak")}


def _clipped(
    data: np.ndarray, max_fingers: int, thresh: float, device: str
) -> tuple[PowerLawFit | None, int, PowerLawFit | None]:
    """(best fit, fingers clipped, the unclipped fit) — RMT_Util.fit_clipped_powerlaw with WWFit."""
    first = fit_power_law(data, device)
    if first is None:
        return None, 0, None
    for idx in range(2, max_fingers):
        clipped = data[:-idx]
        fit = fit_power_law(clipped, device) if len(clipped) >= 2 and clipped[-1] > clipped[0] else None
        if fit is None:
            break
        if fit.alpha + thresh < first.alpha:
            return fit, idx - 1, first
        if fit.alpha <= MIN_ALPHA:
            break
    return first, 0, first


def _takes_distribution(powerlaw: object) -> bool:
    """Whether this powerlaw's Fit has the `distribution` keyword (1.x) or not (2.x)."""
    return "distribution" in inspect.signature(powerlaw.Fit.__init__).parameters  # type: ignore[attr-defined]


def _powerlaw_package(evals: np.ndarray, data: np.ndarray, kind: str, xmin_peak: bool) -> dict[str, object]:
    """A TPL or xmin_peak fit by the `powerlaw` package, as weightwatcher's fit_powerlaw runs it."""
    import powerlaw

    distribution = "truncated_power_law" if kind == "TPL" else "power_law"
    xmin: tuple[float, float] | None = None
    if xmin_peak:
        h = np.histogram(np.log10(data), bins=100)
        peak = 10 ** h[1][np.argmax(h[0])]
        xmin = (np.log10(0.95 * peak), 1.5 * peak)
    try:
        with (
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
            warnings.catch_warnings(),
            np.errstate(all="ignore"),
        ):
            warnings.simplefilter("ignore")
            # powerlaw < 2 took (and weightwatcher 0.7.7 passes) distribution=; 2.0 refuses it, so it is given
            # only where the installed package accepts it (weightwatcher's own TPL fit fails under powerlaw 2)
            extra = {"distribution": distribution} if _takes_distribution(powerlaw) else {}
            fit = powerlaw.Fit(data, xmin=xmin, xmax=None, verbose=False, xmin_distribution=distribution, **extra)
            alpha = fit.truncated_power_law.alpha if kind == "TPL" else fit.alpha
            lam = fit.truncated_power_law.Lambda if kind == "TPL" else None
            d, sigma, fit_xmin = fit.D, fit.sigma, fit.xmin
    except Exception:  # noqa: BLE001 - weightwatcher records any failure of the package's fit as status "failed"
        return {"status": "failed"}
    if alpha is None or not math.isfinite(alpha):
        return {"status": "failed"}
    tail = data[data >= fit_xmin]
    columns = fit_columns(PowerLawFit(float(alpha), float(fit_xmin), float(tail[-1]), float(d), len(tail)), evals)
    return {
        **columns,
        "sigma": float(sigma),
        "tpl_lambda": float(lam) if lam is not None else None,
        "status": "success",
    }
