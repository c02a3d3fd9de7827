"""The unlearning methods: one module per method, and this registry (name -> :class:`MethodSpec`).

Everything that lists methods reads :data:`REGISTRY`: ``advunlearn run --methods``, a batch's
``methods`` check, :mod:`advunlearn.experiments.runner` (which runs them and keys their results), the report's
row order and labels, and notebook 04.  **A new method is one new file plus one line** here::

    register("mymethod")          # the module advunlearn/methods/mymethod.py

A method module defines

``__doc__``    the paper and its update rule in one formula (notebook 04 shows it)
``LABEL``      the row label in tables (optional; default: the registered name)
``DEFAULTS``   ``{hparam: default}``: every hyperparameter ``run`` takes
``SPACE``      the tuner's search space, ``{hparam: spec}`` over some of DEFAULTS' keys, with spec one of

               - ``("log", lo, hi)``: a float drawn log-uniformly from [lo, hi]
               - ``("log1m", lo, hi)``: a float in [lo, hi] (hi < 1) whose 1 − value is drawn
                 log-uniformly (for weights close to 1, such as NegGrad+'s β)
               - ``("float", lo, hi)``: a float drawn uniformly from [lo, hi]
               - ``("int", lo, hi)``: an integer drawn uniformly from lo..hi (both included)
               - ``("logint", lo, hi)``: an integer drawn log-uniformly from lo..hi (lo > 0)
               - ``("cat", [a, b, ...])``: one of the listed values
``PUBLISHED``  the values its paper or reference code publishes, ``{key: {hparam: value}}`` with the keys
               of ``Profile.methods`` ("default", "<scheme>", "<scheme>-<dense|sparse>"): the tuner's
               first trial in every setting (:func:`published`), inside SPACE
``SOURCE``     where PUBLISHED comes from, in one line
``TUNING_FIXED`` ``{hparam: value}`` the tuner adds to every trial: values that change how fast, never
               what, a trial computes (Ours: no history records in the loop); optional
``HARD_BOUNDS`` ``{hparam: ("lo"|"hi", why)}`` or ``{hparam: {"lo": why, "hi": why}}``: bounds of SPACE
               that are limits of the method, not of the search (a winner there is not a reason to
               widen it); optional
``CHECKS``     ``{hparam: check}``, ``check(method, name, value) -> value`` raising ConfigError for a
               bad value (see the checks in :mod:`advunlearn.methods._common`)
``VERSION``    an int raised whenever the code changes what the method computes (in its store keys)
``run``        ``run(exp, **hparams) -> (model, info)``, ``info = {"run_time_s", "hparams", ...}``; it
               starts from a copy of θ0, keeps OMP masks exact and leaves the stored θ0 untouched

and optionally ``TABLES`` (the report tables that list it; default ``("table1",)``),
``profile_values(prof, scheme, sparsity) -> dict`` (values the profile keeps outside
``Profile.methods``, e.g. FT's ``finetune`` recipe), ``store_key(exp) -> dict`` (what else than its
hyperparameters decides its result, e.g. Ours' attacker) and ``validate(hparams) -> hparams`` (a check
of the whole set).

Hyperparameters resolve as (later wins, see :func:`resolve_hparams`)::

    module DEFAULTS < profile_values(...) < Profile.methods[method][key] < explicit overrides < fixed

where ``Profile.methods[method]`` maps a key ``"default"``, ``"<scheme>"`` or
``"<scheme>-<dense|sparse>"`` to hyperparameters, merged in that order (the most specific key wins
per hyperparameter), and ``fixed`` are the values a registration pins (``ours_no_vss`` is ``ours``
with β = 0).  Frozen tuned values live in ``advunlearn/tuned/<profile>-<dataset>.json``
(:func:`advunlearn.experiments.profiles.load_tuned`) and enter ``Profile.methods`` (for ``ours``: ``Profile.unlearn``).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Mapping

from ..core.config import SCHEMES, ConfigError

# Profile.methods keys, least specific first (the order they are merged in).
METHOD_KEYS = ("default",) + SCHEMES + tuple(f"{s}-{d}" for s in SCHEMES for d in ("dense", "sparse"))
SPACE_KINDS = ("log", "log1m", "float", "int", "logint", "cat")
TABLES = ("table1", "table2")


@dataclass(frozen=True)
class MethodSpec:
    """One registered method: its module and what the registration adds (label, fixed values, tables)."""

    name: str
    module: ModuleType
    label: str
    fixed: Mapping[str, Any] = field(default_factory=dict)
    tables: tuple = ("table1",)

    @property
    def defaults(self) -> dict:
        return dict(self.module.DEFAULTS)

    @property
    def space(self) -> dict:
        """The tuner's search space, without the hyperparameters this registration fixes."""
        return {k: v for k, v in self.module.SPACE.items() if k not in self.fixed}

    @property
    def version(self) -> int:
        return int(self.module.VERSION)

    @property
    def doc(self) -> str:
        return inspect.cleandoc(self.module.__doc__ or "")

    @property
    def tunable(self) -> tuple:
        """The hyperparameters a profile or a caller may set (DEFAULTS' keys less the fixed ones)."""
        return tuple(k for k in self.module.DEFAULTS if k not in self.fixed)

    @property
    def hard_bounds(self) -> dict:
        """``{hparam: {"lo"|"hi": why}}``: the bounds of the space that are the method's own limits."""
        return {k: hard_sides(v) for k, v in getattr(self.module, "HARD_BOUNDS", {}).items() if k in self.space}

    def run(self, exp, **hparams):
        return self.module.run(exp, **hparams)


REGISTRY: dict[str, MethodSpec] = {}


def hard_sides(bound) -> dict[str, str]:
    """A HARD_BOUNDS entry as ``{"lo"|"hi": why}``: it is ``("lo"|"hi", why)`` or already that mapping."""
    if isinstance(bound, Mapping):
        sides = dict(bound)
    elif isinstance(bound, (tuple, list)) and len(bound) == 2 and isinstance(bound[1], str):
        sides = {bound[0]: bound[1]}
    else:
        raise TypeError(f"hard bound {bound!r}; expected (\"lo\"|\"hi\", why) or {{\"lo\"|\"hi\": why}}")
    if not sides or set(sides) - {"lo", "hi"} or not all(isinstance(w, str) and w for w in sides.values()):
        raise TypeError(f"hard bound {bound!r}; expected (\"lo\"|\"hi\", why) or {{\"lo\"|\"hi\": why}}")
    return sides


def _check_module(name: str, module: ModuleType) -> None:
    missing = [a for a in ("DEFAULTS", "SPACE", "CHECKS", "VERSION", "run") if not hasattr(module, a)]
    if missing:
        raise TypeError(f"method {name!r}: module {module.__name__} lacks {missing}")
    d = module.DEFAULTS
    unknown = sorted(set(module.SPACE) - set(d))
    if unknown:
        raise TypeError(f"method {name!r}: SPACE names {unknown}, which are not in DEFAULTS {sorted(d)}")
    for k, spec in module.SPACE.items():
        ok = isinstance(spec, tuple) and spec and spec[0] in SPACE_KINDS and (
            (spec[0] == "cat" and len(spec) == 2 and len(spec[1]) > 0) or
            (spec[0] != "cat" and len(spec) == 3 and spec[1] <= spec[2] and (spec[0] not in ("log", "logint") or spec[1] > 0)
             and (spec[0] != "log1m" or spec[2] < 1)))
        if not ok:
            raise TypeError(f"method {name!r}: SPACE[{k!r}]={spec!r}; expected (\"log\"|\"log1m\"|\"float\"|\"int\", "
                            "lo, hi) with lo <= hi (lo > 0 for log, hi < 1 for log1m) or (\"cat\", [choices])")
    pub = getattr(module, "PUBLISHED", {})
    for key, hp in pub.items():
        if key not in METHOD_KEYS:
            raise TypeError(f"method {name!r}: PUBLISHED key {key!r}; allowed: {list(METHOD_KEYS)}")
        unknown = sorted(set(hp) - set(d))
        if unknown:
            raise TypeError(f"method {name!r}: PUBLISHED[{key!r}] names {unknown}, which are not in DEFAULTS")
    for k, hb in getattr(module, "HARD_BOUNDS", {}).items():
        try:
            hard_sides(hb)
            ok = k in module.SPACE
        except TypeError:
            ok = False
        if not ok:
            raise TypeError(f"method {name!r}: HARD_BOUNDS[{k!r}]={hb!r}; expected (\"lo\"|\"hi\", why) or "
                            f"{{\"lo\"|\"hi\": why}} for a hyperparameter of SPACE {sorted(module.SPACE)}")
    unknown = sorted(set(module.CHECKS) - set(d))
    if unknown:
        raise TypeError(f"method {name!r}: CHECKS names {unknown}, which are not in DEFAULTS {sorted(d)}")


def register(name: str, module: ModuleType | str | None = None, *, label: str | None = None,
             fixed: Mapping[str, Any] | None = None, tables: tuple | None = None, replace: bool = False) -> MethodSpec:
    """Add method ``name`` (run by ``module``) to the registry; returns its spec.

    ``module``: a module object, or the name of a module in this package (default: ``name``).
    ``label``: its row label (default: the module's LABEL, else ``name``); ``fixed``: hyperparameters
    pinned for this name (a variant of another method); ``tables``: the report tables that list it
    (default: the module's TABLES, else ``("table1",)``).  A name registers once unless ``replace``.
    """
    if not isinstance(name, str) or not name.replace("_", "").isalnum() or name != name.lower():
        raise ConfigError(f"method name {name!r} must be lower-case letters, digits and underscores")
    if name in REGISTRY and not replace:
        raise ConfigError(f"method {name!r} is already registered")
    if module is None or isinstance(module, str):
        module = importlib.import_module(f"{__name__}.{module or name}")
    _check_module(name, module)
    fixed = dict(fixed or {})
    unknown = sorted(set(fixed) - set(module.DEFAULTS))
    if unknown:
        raise ConfigError(f"method {name!r}: fixed hyperparameter(s) {unknown} are not in {sorted(module.DEFAULTS)}")
    tables = tuple(tables if tables is not None else getattr(module, "TABLES", ("table1",)))
    bad = [t for t in tables if t not in TABLES]
    if bad:
        raise ConfigError(f"method {name!r}: unknown table(s) {bad}; allowed: {list(TABLES)}")
    spec = MethodSpec(name, module, label or getattr(module, "LABEL", name), fixed, tables)
    check_hparams(spec, {**spec.defaults, **fixed}, where=f"{name} (defaults)")
    REGISTRY[name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove ``name`` from the registry (for tests that register a toy method)."""
    REGISTRY.pop(name, None)


def names(table: str | None = None) -> tuple[str, ...]:
    """Registered method names in registration order (the tables' row order), or those of one table."""
    return tuple(n for n, s in REGISTRY.items() if table is None or table in s.tables)


def get(name: str) -> MethodSpec:
    """The spec of method ``name``; a ConfigError naming the registered methods otherwise."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(f"method={name!r} is not allowed; choose one of {', '.join(map(repr, REGISTRY))}") from None


def check_names(methods, where: str = "methods") -> list[str]:
    """``methods`` as a list of registered names, or a ConfigError naming the allowed ones."""
    if isinstance(methods, str) or not isinstance(methods, (list, tuple)) or not methods:
        raise ConfigError(f"{where}={methods!r} must be a non-empty list drawn from {', '.join(REGISTRY)}")
    for m in methods:
        if m not in REGISTRY:
            raise ConfigError(f"{where}={m!r} is not allowed (method={m!r} is not registered); "
                              f"choose from {', '.join(REGISTRY)}")
    return list(methods)


def label(name: str) -> str:
    """The table label of a method (the name itself for a method that is not registered)."""
    spec = REGISTRY.get(name)
    return spec.label if spec else name


def check_hparams(spec: MethodSpec | str, hp: Mapping[str, Any], where: str | None = None,
                  partial: bool = False) -> dict:
    """``hp`` checked against ``spec``: names (unknown ones raise, naming the allowed ones) and values
    (each through the module's CHECKS, then its ``validate``).  ``partial``: ``hp`` may name only some
    hyperparameters (they are checked against the defaults for the rest)."""
    spec = get(spec) if isinstance(spec, str) else spec
    where = where or spec.name
    if not isinstance(hp, Mapping):
        raise ConfigError(f"{where}: hyperparameters must be a mapping of names to values, not "
                          f"{type(hp).__name__}; allowed names: {list(spec.module.DEFAULTS)}")
    unknown = sorted(map(str, set(hp) - set(spec.module.DEFAULTS)))
    if unknown:
        raise ConfigError(f"unknown hyperparameter(s) {unknown} for method {spec.name!r}; "
                          f"allowed: {list(spec.module.DEFAULTS)}")
    full = {**spec.defaults, **hp} if partial else dict(hp)
    missing = sorted(set(spec.module.DEFAULTS) - set(full))
    if missing:
        raise ConfigError(f"{where}: missing hyperparameter(s) {missing}")
    out = dict(full)
    for k, check in spec.module.CHECKS.items():
        out[k] = check(spec.name, k, full[k])
    validate = getattr(spec.module, "validate", None)
    if validate is not None:
        out = dict(validate(out))
    return {k: out[k] for k in hp} if partial else out


def check_profile_methods(methods: Any) -> dict:
    """Validate ``Profile.methods``: method -> key -> hyperparameters (names and values); returns a
    plain-dict copy.  Methods whose profile values live elsewhere (``ours``: ``Profile.unlearn``) are
    refused here, so each value has one home."""
    if not isinstance(methods, Mapping):
        raise ConfigError(f"methods={methods!r} must be a mapping method -> key -> hyperparameters, keys "
                          f"{list(METHOD_KEYS)}; methods: {', '.join(REGISTRY)}")
    out = {}
    for m, by_key in methods.items():
        spec = get(m)
        home = getattr(spec.module, "PROFILE_FIELD", None)
        if home:
            raise ConfigError(f"methods[{m!r}]: the profile keeps {m}'s hyperparameters in {home!r}, "
                              f"not in methods")
        if not isinstance(by_key, Mapping):
            raise ConfigError(f"methods[{m!r}] must be a mapping of keys {list(METHOD_KEYS)} to hyperparameters")
        out[m] = {}
        for key, hp in by_key.items():
            if key not in METHOD_KEYS:
                raise ConfigError(f"unknown key {key!r} in methods[{m!r}]; allowed keys: {list(METHOD_KEYS)}")
            if isinstance(hp, Mapping):
                fixed = sorted(set(hp) & set(spec.fixed))
                if fixed:
                    raise ConfigError(f"methods[{m!r}][{key!r}]: {fixed} fixed for {m!r}; tunable: "
                                      f"{list(spec.tunable)}")
            out[m][key] = check_hparams(spec, hp, where=f"methods[{m!r}][{key!r}]", partial=True)
    return out


def profile_hparams(prof, method: str, scheme: str, sparsity: float) -> dict:
    """The hyperparameters profile ``prof`` sets for ``method`` in (scheme, sparsity): the module's
    ``profile_values`` hook, then ``prof.methods[method]`` at :func:`method_keys` (later keys win): "default",
    for the memorized scheme the random scheme's keys, then "<scheme>" and "<scheme>-<dense|sparse>"."""
    spec = get(method)
    hook = getattr(spec.module, "profile_values", None)
    out = dict(hook(prof, scheme, sparsity)) if hook else {}
    by_key = (getattr(prof, "methods", None) or {}).get(method, {})
    for key in method_keys(scheme, sparsity):
        out.update(by_key.get(key, {}))
    return out


def published(method: str, scheme: str, sparsity: float) -> dict:
    """The values ``method``'s paper or reference code publishes for (scheme, sparsity), restricted to
    its search space: the module's ``PUBLISHED`` at :func:`method_keys` (later keys win) over its DEFAULTS."""
    spec = get(method)
    pub = getattr(spec.module, "PUBLISHED", {})
    out = {**spec.defaults}
    for key in method_keys(scheme, sparsity):
        out.update(pub.get(key, {}))
    return {k: out[k] for k in spec.space}


def density(sparsity: float) -> str:
    return "sparse" if sparsity > 0 else "dense"


# The memorized scheme forgets a set of the random scheme's size: it reads the random scheme's values,
# and its own keys (if a profile has them) win over those.  Recorded in each result's ``hparams_from``.
FALLBACK_SCHEME = {"memorized": "random"}


def method_keys(scheme: str, sparsity: float) -> tuple[str, ...]:
    """The ``Profile.methods`` keys (and PUBLISHED keys) read for (scheme, sparsity), least specific first."""
    d = density(sparsity)
    base = FALLBACK_SCHEME.get(scheme)
    keys = ("default",) + ((base, f"{base}-{d}") if base else ())
    return keys + (scheme, f"{scheme}-{d}")


def resolve_hparams(exp, method: str, overrides: Mapping[str, Any] | None = None) -> dict:
    """``method``'s hyperparameters for experiment ``exp``, checked: DEFAULTS < the profile's values
    for (scheme, sparsity) < ``overrides`` < the registration's fixed values.  An unknown or bad value
    raises a ConfigError before any work."""
    spec = get(method)
    overrides = dict(overrides or {})
    unknown = sorted(map(str, set(overrides) - set(spec.module.DEFAULTS)))
    if unknown:
        raise ConfigError(f"unknown hyperparameter(s) {unknown} for method {method!r}; allowed: {list(spec.tunable)}")
    hp = {**spec.defaults, **profile_hparams(exp.prof, method, exp.scheme, exp.sparsity), **overrides,
          **spec.fixed}
    return check_hparams(spec, hp)


def store_key(exp, method: str, hparams: Mapping[str, Any]) -> dict:
    """What decides ``method``'s result beyond the experiment: its resolved hyperparameters, its
    module's ``store_key(exp)`` and its VERSION."""
    spec = get(method)
    hook = getattr(spec.module, "store_key", None)
    return {"method": method, "hparams": dict(hparams), "extra": hook(exp) if hook else {}, "v": spec.version}


def run_method(exp, method: str, **overrides):
    """Run ``method`` on ``exp`` with its resolved hyperparameters; returns ``(model, info)`` with
    ``info["method"] = method`` and ``info["hparams"]`` (at least the resolved hyperparameters)."""
    spec = get(method)
    hp = resolve_hparams(exp, method, overrides)
    model, info = spec.run(exp, **hp)
    info = dict(info)
    info["method"] = method
    info["hparams"] = {**hp, **info.get("hparams", {})}
    model.eval()
    return model, info


def versions() -> dict[str, int]:
    return {n: s.version for n, s in REGISTRY.items()}


def _md(text: str) -> str:
    return text.replace("``", "`")


def describe(name: str) -> str:
    """Markdown for one method from its module docstring: its label and paper (the first paragraph)
    and its update rule with a line on why (the second).  A variant names what it fixes."""
    spec = get(name)
    paras = [" ".join(line.strip() for line in p.splitlines()) for p in spec.doc.split("\n\n") if p.strip()]
    head = paras[0] if paras else spec.label
    first, _, rest = head.partition(": ")
    if rest and "(" not in first:       # "SalUn: saliency unlearning (...)" -> "saliency unlearning (...)"
        head = rest[:1].upper() + rest[1:]
    rule = paras[1] if len(paras) > 1 else ""
    if spec.fixed:
        fixed = ", ".join(f"{k} = {v!r}" for k, v in spec.fixed.items())
        return f"**{spec.label}** (`{name}`): {_md(head)} With {fixed}.\n\n{_md(rule)}"
    return f"**{spec.label}** (`{name}`): {_md(head)}\n\n{_md(rule)}"


def describe_all(methods=None) -> str:
    """:func:`describe` of every registered method (or of ``methods``), as one markdown text."""
    return "\n\n".join(describe(m) for m in (names() if methods is None else methods))


def hparams_markdown(methods=None, exp=None) -> str:
    """A markdown table: each method's hyperparameters (the defaults, or with ``exp`` the values
    :func:`resolve_hparams` gives for that experiment) and the tuner's search space."""
    lines = [f"| method | {'hyperparameters' if exp is not None else 'defaults'} | search space |", "|---|---|---|"]
    for m in (names() if methods is None else methods):
        spec = get(m)
        hp = resolve_hparams(exp, m) if exp is not None else {**spec.defaults, **spec.fixed}
        d = ", ".join(f"{k}={v!r}" for k, v in hp.items())
        sp = ", ".join(f"{k}: {v[0]} {list(v[1]) if v[0] == 'cat' else f'[{v[1]:g}, {v[2]:g}]'}"
                       for k, v in spec.space.items())
        lines.append(f"| {spec.label} | {d or '–'} | {sp or '–'} |")
    return "\n".join(lines)


# ---- the registered methods (registration order = the tables' row order) ------------------------------
register("retrain", tables=("table1", "table2"))
register("retrain_seed2", "retrain", label="Retrain (another seed)", fixed={"replica": 1}, tables=("table1", "table2"))
register("ft")
register("ga")
register("ff")
register("iu")
register("rl")
register("salun")
register("neggrad_plus")
register("scrub")
register("scrub_r", "scrub", label="SCRUB+R", fixed={"rewind": True})
register("l1_sparse")
register("ssd")
register("ours", tables=("table1", "table2"))
register("ours_no_vss", "ours", label="Ours (No V_ss)", fixed={"beta": 0.0}, tables=("table2",))

__all__ = ["REGISTRY", "MethodSpec", "register", "unregister", "names", "get", "label", "check_names",
           "check_hparams", "check_profile_methods", "profile_hparams", "resolve_hparams", "store_key",
           "run_method", "versions", "describe", "describe_all", "hparams_markdown", "METHOD_KEYS", "published",
           "method_keys", "FALLBACK_SCHEME"]
