"""The mechanistic CAR-T models, models/cart_tall.toml and models/cart_ball.toml (issue 5).

What is checked, each against an independent reference:

* the typical CD7 CAR-T curve: peak between days 7 and 21 without a peak day in the
  equations, contraction and persistence, and levels of the order reported (targets.csv);
* each mechanism in isolation: closed forms (logistic leukaemia growth to capacity,
  Gompertz T-cell regrowth, B-cell production and turnover, first-order CAR-T decay
  without antigen, antigen loss, logistic donor haematopoiesis, the homeostatic cytokine
  level), conservation of cells by transfers, and signs (no antigen: no expansion; fully
  edited product: no fratricide; no antigen-negative seed or loss: no antigen-negative
  relapse; graft failure against host T cells; ...);
* cart_tall's stochastic blasts: the exact extinction probability d/b of one cell's
  lineage; above 20 cells they follow their ODE, checked against closed forms;
* the integration against scipy's Radau (tests/reference.py) at tight tolerance (cart_tall
  through its deterministic twin: the stochastic states' gain - loss as ODEs).
"""


import tomllib

import numpy as np
import pytest

from carkinetics import SolverOptions, load_model, simulate, simulate_batch
from carkinetics.model import expressions as ex
from carkinetics.simulation.schedule import Action, Event
from carkinetics.scenario.reference import load_targets

from conftest import MODELS
from reference import reference_solve, scaled_error

TALL_DOSE = 6e7     # 1e6 CAR+ cells/kg x 60 kg (Pan 2021 dose level)
BALL_DOSE = 1e8     # tisagenlecleucel, 1.0e8 total above 50 kg (Stein 2019 population)
TALL_CAR = ("car_effector_neg", "car_memory_neg", "car_exhausted_neg",
            "car_effector_pos", "car_memory_pos", "car_exhausted_pos")
BALL_CAR = ("car_effector", "car_memory", "car_exhausted")
BLASTS = {"cart_tall": ("leukaemia_pos", "leukaemia_neg", "emd_pos", "emd_neg"),
          "cart_ball": ("leukaemia_pos", "leukaemia_neg")}
HOST = {"cart_tall": ("normal_t_pos", "normal_t_neg", "nk_pos", "nk_neg"),
        "cart_ball": ("normal_b", "normal_t")}


@pytest.fixture(scope="module")
def tall():
    return load_model(MODELS / "cart_tall.toml")


def deterministic_twin(path, directory):
    """The model at ``path`` with every stochastic state replaced by its mean-field ODE
    ``gain - loss`` (the same rates, no discrete regime), written to ``directory``."""
    text = path.read_text()
    outcomes = tomllib.loads(text)["model"].get("outcome_parameters")
    if outcomes:  # the outcome model stays where it is
        text = text.replace(f'"{outcomes}"', f'"{(path.parent / outcomes).as_posix()}"', 1)
    spec = tomllib.loads(text)
    odes = []
    for name, state in spec["states"].items():
        if "stochastic" in state:
            odes.append(f'{name} = "({state["stochastic"]["gain"]}) - ({state["stochastic"]["loss"]})"')
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("stochastic = {")]
    k = lines.index("[odes]")
    out = directory / path.name
    out.write_text("\n".join(lines[:k + 1] + odes + lines[k + 1:]) + "\n")
    return out


@pytest.fixture(scope="module")
def tall_twin(tmp_path_factory):
    """cart_tall without the discrete regime of its blasts (deterministic; see deterministic_twin)."""
    twin = load_model(deterministic_twin(MODELS / "cart_tall.toml", tmp_path_factory.mktemp("twin")))
    assert not twin.stochastic_states
    return twin


@pytest.fixture(scope="module")
def ball():
    return load_model(MODELS / "cart_ball.toml")


@pytest.fixture(scope="module")
def targets():
    return load_targets().set_index("target_id")


# ---------------------------------------------------------------------------- protocol helpers

def _values(model, overrides=None):
    # structural tests switch mechanisms off (rates of 0), outside the parameters' plausible bounds
    return dict(zip(model.parameter_names, model.parameter_vector(overrides, check_bounds=False)))


def lymphodepletion(model, p, time=-5.0):
    acts = [Action("multiply", s, p["lymphodepletion_survival"]) for s in HOST[model.name]]
    acts += [Action("multiply", s, p["lymphodepletion_leukaemia_survival"]) for s in BLASTS[model.name]]
    return Event(time, acts, name="lymphodepletion")


def infusion(model, p, dose, time=0.0):
    mem = p["product_memory_fraction"]
    noncar = dose * p["product_noncar_ratio"]
    if model.name == "cart_tall":
        ed = p["product_edited_fraction"]
        amounts = {"car_effector_neg": dose * ed * (1 - mem), "car_memory_neg": dose * ed * mem,
                   "car_effector_pos": dose * (1 - ed) * (1 - mem), "car_memory_pos": dose * (1 - ed) * mem,
                   "product_t_neg": noncar * ed}
    else:
        amounts = {"car_effector": dose * (1 - mem), "car_memory": dose * mem, "product_t": noncar}
    acts = [Action("add", s, v) for s, v in amounts.items()]
    if model.name == "cart_tall":   # the infused cells arrive in programmed proliferation
        acts.append(Action("set", "car_activation", p["product_activation"]))
    return Event(time, acts, name="infusion")


def transplant(model, p, time, car_survival=None):
    car = TALL_CAR if model.name == "cart_tall" else BALL_CAR
    lymph = HOST[model.name] + (("product_t_neg",) if model.name == "cart_tall" else ("product_t",))
    cs = p["conditioning_survival_car"] if car_survival is None else car_survival
    acts = [Action("multiply", s, p["conditioning_survival_leukaemia"]) for s in BLASTS[model.name]]
    acts += [Action("multiply", s, p["conditioning_survival_lymphocytes"]) for s in lymph]
    acts += [Action("multiply", s, cs) for s in car]
    if model.name == "cart_tall":
        ge = p["graft_edited_fraction"]
        acts += [Action("add", "graft_t_pos", p["graft_t_cells"] * (1 - ge)),
                 Action("add", "graft_t_neg", p["graft_t_cells"] * ge)]
    else:
        acts += [Action("add", "graft_t", p["graft_t_cells"])]
    if model.name == "cart_tall":   # myeloablative conditioning leaves this share of host marrow
        host = (1 - p["donor_haematopoiesis_seed"]) * p["conditioning_survival_marrow"]
        acts += [Action("set", "donor_haematopoiesis", 1 - host)]
    else:
        acts += [Action("add", "donor_haematopoiesis", p["donor_haematopoiesis_seed"])]
    return Event(time, acts, name="transplant")


def typical_protocol(model, overrides=None, dose=None):
    p = _values(model, overrides)
    dose = (TALL_DOSE if model.name == "cart_tall" else BALL_DOSE) if dose is None else dose
    return [lymphodepletion(model, p), infusion(model, p, dose)]


FINE = np.round(np.concatenate([np.arange(-5.0, 60.0, 0.1), np.arange(60.0, 731.0, 1.0)]), 9)


def run(model, events, times=FINE, overrides=None, **options):
    p = model.parameter_vector(overrides or {}, check_bounds=False)  # mechanisms switched off: see _values
    return simulate(model, events, times, parameters=p, options=SolverOptions(**options))


def at(traj, name, day):
    return float(traj[name][np.argmin(np.abs(traj.times - day))])


def peak(traj, name="car_t_per_ul"):
    y = traj[name]
    k = int(np.argmax(y))
    return float(traj.times[k]), float(y[k])


# ---------------------------------------------------------------------------- structure

@pytest.mark.parametrize("name", ["cart_tall", "cart_ball"])
def test_no_peak_day_or_time_switch_in_the_equations(name):
    model = load_model(MODELS / f"{name}.toml")
    assert model.breakpoints == ()
    used = set()
    for e in list(model.expressions.values()) + list(model.odes.values()):
        used |= ex.names(e)
    assert "t" not in used                      # autonomous: the peak can only emerge
    assert not [p.name for p in model.parameters if "tmax" in p.name.lower()]
    for p in model.parameters:                  # every parameter annotated for calibration
        assert p.unit and p.description and p.source and p.status in ("published", "derived", "assumption", "fixed")
        if p.status != "fixed":
            assert p.bounds is not None and p.bounds[0] <= p.value <= p.bounds[1], p.name


# ---------------------------------------------------------------------------- typical curves

def test_typical_cd7_curve_peaks_in_days_7_to_21_then_contracts_and_persists(tall, targets):
    tr = run(tall, typical_protocol(tall))
    assert tr.success
    tmax, cmax = peak(tr)
    assert 7.0 <= tmax <= 21.0
    # NCT05290155 (autologous CD7 CAR-T): median Tmax 12 d, range 10-21
    lo, hi = targets.loc["nct05290155_car_tmax", ["lower", "upper"]]
    assert lo <= tmax <= hi
    # peak transgene inside the NCT05290155 range; flow peak within 5-fold of the Zhengzhou median
    # (different products and assays: orders of magnitude, as the targets README says)
    copies = tr["transgene_copies_per_ug"][np.argmax(tr["car_t_per_ul"])]
    lo, hi = targets.loc["nct05290155_car_peak", ["lower", "upper"]]
    assert lo <= copies <= hi
    zz = targets.loc["zz_car_peak", "value"]
    assert zz / 5 <= cmax <= zz * 5
    # contraction: fast (Stein 2019 half-life 4.3 d; 3-8 d accepted), then a much slower persistence phase
    early = np.log(at(tr, "car_t_per_ul", tmax + 7) / at(tr, "car_t_per_ul", tmax + 14)) / 7
    late = np.log(at(tr, "car_t_per_ul", 180) / at(tr, "car_t_per_ul", 365)) / 185
    assert np.log(2) / 8 <= early <= np.log(2) / 3
    assert abs(late) < 0.1 * early
    # by day 28 at least the contraction of the slowest accepted half-life (8 d) since the peak
    # (the proliferation programme and cytokine-driven proliferation outlast the antigen by days,
    # so the decline is not faster than that bound requires)
    assert at(tr, "car_t_per_ul", 28) < cmax * 2 ** (-(28 - tmax) / 8)
    # still detectable at month 6 (s2_car_detectable_m6: 5/5); 50 copies/ug is a typical qPCR LLOQ
    assert targets.loc["s2_car_detectable_m6", "value"] == 1.0
    assert at(tr, "transgene_copies_per_ug", 183) > 50
    # remission by day 28 (s2_cr: 90%), MRD-negative
    assert at(tr, "marrow_blast_fraction", 28) < 1e-4
    # CD7+ normal T cells depleted, CD7- T cells expand (Pan 2021), but stay below normal (Pan 2024, CD5)
    p = _values(tall)
    to_blood = p["blood_fraction"] / p["blood_volume_ul"]
    pre = p["normal_t_initial"] * (1 - p["normal_t_antigen_negative_fraction"]) * to_blood  # before lymphodepletion
    assert at(tr, "t_antigen_positive_per_ul", 28) < 0.01 * pre
    assert at(tr, "t_antigen_positive_per_ul", 180) < 1.0
    neg28, neg180, neg365 = (at(tr, "t_antigen_negative_per_ul", d) for d in (28, 180, 365))
    assert neg180 > 10 * neg28
    assert neg365 < p["t_capacity"] * to_blood


@pytest.mark.parametrize("product", ["cd7_donor", "cd7_auto"])
def test_calibrated_cd7_products_peak_in_days_7_to_21_then_contract_and_persist(tall, targets, product):
    """The typical curve of each calibrated CD7 product (models/calibrated/cart_tall/): peak in
    days 7-21 (no peak day in the equations), fast contraction, then a slow persistence phase."""
    from carkinetics.scenario.load import load_parameter_set

    calibrated = load_parameter_set(MODELS / "calibrated" / "cart_tall"
                                    / f"{product}.toml", tall)
    tr = run(tall, typical_protocol(tall, calibrated), overrides=calibrated)
    assert tr.success
    tmax, cmax = peak(tr)
    assert 7.0 <= tmax <= 21.0
    early = np.log(at(tr, "car_t_per_ul", tmax + 7) / at(tr, "car_t_per_ul", tmax + 14)) / 7
    late = np.log(at(tr, "car_t_per_ul", 180) / at(tr, "car_t_per_ul", 365)) / 185
    assert np.log(2) / 8 <= early <= np.log(2) / 3
    assert abs(late) < 0.1 * early
    assert at(tr, "transgene_copies_per_ug", 183) > 50
    lo, hi = targets.loc["nct05290155_car_peak", ["lower", "upper"]]
    assert lo <= tr["transgene_copies_per_ug"][np.argmax(tr["car_t_per_ul"])] <= hi


def test_peak_day_and_height_emerge_from_antigen_and_product(tall):
    base = run(tall, typical_protocol(tall))
    t0, c0 = peak(base)
    big = {"blasts_initial": 2e12}
    t_big, c_big = peak(run(tall, typical_protocol(tall, big), overrides=big))
    small = {"blasts_initial": 1e9}
    t_small, c_small = peak(run(tall, typical_protocol(tall, small), overrides=small))
    weak = {"product_fitness": 0.6}
    t_weak, c_weak = peak(run(tall, typical_protocol(tall, weak), overrides=weak))
    assert c_small < c0 < c_big                 # expansion tracks the antigen burden
    assert t0 < t_big                           # a bigger burden takes longer to clear
    # (a small burden no longer peaks earlier: its low peak is shaped by cytokine-driven
    # expansion after lymphodepletion, which lasts as long as the lymphocyte space is empty)
    assert t_weak > t0 + 3 and c_weak < c0      # a less fit product peaks later and lower
    for t in (t0, t_big, t_small, t_weak):
        assert 7.0 <= t <= 25.0


def test_typical_cd19_curve(ball, targets):
    tr = run(ball, typical_protocol(ball))
    tmax, _ = peak(tr)
    assert 7.0 <= tmax <= 21.0
    assert abs(tmax - targets.loc["stein_tmax", "value"]) < 5.0
    copies = tr["transgene_copies_per_ug"].max()
    stein = targets.loc["stein_cmax", "value"]
    assert stein / 3 <= copies <= 3 * stein
    assert at(tr, "transgene_copies_per_ug", 28) < 0.3 * copies
    assert at(tr, "marrow_blast_fraction", 28) < 1e-4
    # B-cell aplasia while CAR-T persist
    p = _values(ball)
    before = p["b_production"] * p["b_lifetime_days"] * p["blood_fraction"] / p["blood_volume_ul"]
    assert at(tr, "b_cells_per_ul", 28) < 0.1 * before
    assert at(tr, "car_t_per_ul", 180) > 0.5


# ---------------------------------------------------------------------------- mechanisms in isolation

@pytest.mark.parametrize("name", ["cart_tall", "cart_ball"])
def test_without_car_t_leukaemia_grows_to_capacity_logistically(name):
    model = load_model(MODELS / f"{name}.toml")
    over = {"antigen_loss_rate": 0.0, "blasts_initial": 1e10}
    if name == "cart_tall":     # above 20 cells the blasts follow their ODE: no chance involved
        over |= {"antigen_negative_blasts_initial": 0.0, "emd_present": 0.0}
    p = _values(model, over)
    times = np.linspace(0, 1500, 301)
    tr = run(model, [], times, over, rtol=1e-9)
    K, r, L0 = p["leukaemia_capacity"], p["leukaemia_growth"], p["blasts_initial"]
    if name == "cart_tall":
        # births b (1 - L/K) crowded, deaths d: dL/dt = (b - d) L - b L^2 / K, a logistic with
        # rate b - d = leukaemia_growth and capacity K (1 - d/b)
        K = K * (1 - p["blast_death_rate"] / (p["leukaemia_growth"] + p["blast_death_rate"]))
        assert np.all(tr["leukaemia_neg"] == 0.0)
    logistic = K / (1 + (K / L0 - 1) * np.exp(-r * times))
    np.testing.assert_allclose(tr["blasts_total"], logistic, rtol=1e-6)
    assert tr["blasts_total"][-1] > 0.999 * K
    assert np.all(np.diff(tr["blasts_total"]) >= -1e-12 * K)   # monotone up to round-off at capacity
    # no CAR-T arise (linear-algebra round-off may leave far less than one cell, which cannot grow)
    assert tr["car_t_per_ul"].max() * p["blood_volume_ul"] / p["blood_fraction"] < 1e-6


NO_CYTOKINE_GROWTH = {"car_cytokine_proliferation": 0.0, "car_homeostasis_rate": 0.0, "car_immunogenicity": 0.0,
                      "product_activation": 0.0}


def _no_antigen(model):
    if model.name == "cart_tall":
        return {"blasts_initial": 0.0, "antigen_negative_blasts_initial": 0.0,
                "normal_t_antigen_negative_fraction": 1.0, "nk_antigen_negative_fraction": 1.0,
                "thymic_output": 0.0, "product_edited_fraction": 1.0} | NO_CYTOKINE_GROWTH
    return {"blasts_initial": 0.0, "b_production": 0.0}


@pytest.mark.parametrize("name", ["cart_tall", "cart_ball"])
def test_without_antigen_car_t_do_not_expand_and_decay_as_first_order(name):
    model = load_model(MODELS / f"{name}.toml")
    over = _no_antigen(model)
    p = _values(model, over)
    dose = 1e8
    times = np.linspace(0, 400, 401)
    tr = run(model, [infusion(model, p, dose)], times, over, rtol=1e-9)
    assert np.all(tr["car_stimulation"] == 0.0)
    car = tr["car_t_per_ul"]
    assert np.all(np.diff(car) <= 0) and car[-1] < car[0]
    # closed form with stimulation 0: dE = -(dE + eps) E; dM = eps E - dM M; no exhaustion
    a = p["car_effector_death"] + p["car_memory_formation"]
    b, eps = p["car_memory_death"], p["car_memory_formation"]
    e0, m0 = dose * (1 - p["product_memory_fraction"]), dose * p["product_memory_fraction"]
    e = e0 * np.exp(-a * times)
    m = m0 * np.exp(-b * times) + eps * e0 * (np.exp(-b * times) - np.exp(-a * times)) / (a - b)
    expected = (e + m) * p["blood_fraction"] / p["blood_volume_ul"]
    np.testing.assert_allclose(car, expected, rtol=1e-6)
    if name == "cart_tall":
        # without antigen a programme started ex vivo only decays: a' = -a / car_programme_days
        over_a = dict(over, product_activation=0.5, car_proliferation_max=0.0)
        tr_a = run(model, [infusion(model, _values(model, over_a), dose)], times, over_a, rtol=1e-9)
        np.testing.assert_allclose(tr_a["car_activation"], 0.5 * np.exp(-times / p["car_programme_days"]),
                                   rtol=1e-6, atol=1e-12)
        # homeostatic cytokines (the host is not replete) slow the contraction without antigen
        cyto = {k: v for k, v in over.items() if k not in ("car_cytokine_proliferation", "car_homeostasis_rate")}
        tr_c = run(model, [infusion(model, _values(model, cyto), dose)], times, cyto, rtol=1e-9)
        assert np.all(tr_c["car_stimulation"] == 0.0)
        assert np.all(tr_c["car_t_per_ul"][1:] > car[1:])


def test_fully_edited_product_has_no_fratricide(tall):
    over = {"product_edited_fraction": 1.0}
    for method in ("auto", "rodas4"):
        tr = run(tall, typical_protocol(tall, over), overrides=over, method=method)
        for s in ("car_effector_pos", "car_memory_pos", "car_exhausted_pos"):
            assert np.all(tr[s] == 0.0), (method, s)
        assert np.all(tr["car_antigen_positive_share"] == 0.0)
        assert peak(tr)[1] > 100.0              # and the product still expands


def test_fratricide_removes_antigen_positive_car_t(tall):
    over = {"product_edited_fraction": 0.5}
    tr = run(tall, typical_protocol(tall, over), overrides=over)
    share = tr["car_antigen_positive_share"]
    assert at(tr, "car_antigen_positive_share", 0.0) == pytest.approx(0.5, rel=1e-12)
    assert at(tr, "car_antigen_positive_share", 28) < 0.1
    # the same product without killing keeps its composition during expansion
    nokill = dict(over, kill_max=0.0)
    tr0 = run(tall, typical_protocol(tall, nokill), overrides=nokill)
    assert at(tr0, "car_antigen_positive_share", 10) == pytest.approx(0.5, rel=1e-6)


@pytest.mark.parametrize("name", ["cart_tall", "cart_ball"])
def test_car_t_transfers_conserve_cells(name):
    """With proliferation, death, killing and rejection off, effector -> memory -> effector
    and effector -> exhausted transfers only move cells between CAR-T states (plain ODE:
    the 1-cell extinction rule is off, as it may round a population that starts at zero)."""
    model = load_model(MODELS / f"{name}.toml")
    over = {"car_proliferation_max": 0.0, "car_effector_death": 0.0, "car_memory_death": 0.0,
            "car_exhausted_death": 0.0, "kill_max": 0.0, "rejection_rate": 0.0,
            "car_memory_formation": 0.05, "car_exhaustion": 0.2}
    if name == "cart_tall":     # cytokine-driven proliferation and transgene immunity off too
        over |= {"product_edited_fraction": 0.7} | NO_CYTOKINE_GROWTH
    p = _values(model, over)
    times = np.linspace(0, 200, 201)
    tr = run(model, [infusion(model, p, 1e8)], times, over, rtol=1e-10, extinction=False)
    car = TALL_CAR if name == "cart_tall" else BALL_CAR
    total = sum(tr[s] for s in car)
    np.testing.assert_allclose(total, 1e8, rtol=1e-12)
    assert tr["car_stimulation"].min() > 0.1                 # antigen present: transfers active
    assert tr[car[2]][-1] > 0.1 * 1e8                        # cells did move (to exhausted)


@pytest.mark.parametrize("name", ["cart_tall", "cart_ball"])
def test_antigen_loss_conserves_blasts(name):
    model = load_model(MODELS / f"{name}.toml")
    if name == "cart_tall":
        _antigen_loss_conserves_blasts_tall(model)
        return
    mu = 1e-3
    over = {"leukaemia_growth": 0.0, "antigen_loss_rate": mu}
    p = _values(model, over)
    times = np.linspace(0, 1000, 101)
    tr = run(model, [], times, over, rtol=1e-10)
    l0 = p["blasts_initial"]
    pos0, neg0 = l0 * (1 - p["blast_antigen_negative_fraction"]), l0 * p["blast_antigen_negative_fraction"]
    np.testing.assert_allclose(tr["leukaemia_pos"], pos0 * np.exp(-mu * times), rtol=1e-7)
    np.testing.assert_allclose(tr["leukaemia_neg"], neg0 + pos0 * (1 - np.exp(-mu * times)), rtol=1e-7)
    np.testing.assert_allclose(tr["blasts_total"], l0, rtol=1e-9)


def _antigen_loss_conserves_blasts_tall(model):
    # no net growth (births = deaths = blast_death_rate), no crowding, antigen-negative blasts
    # divide as fast as positive ones: antigen loss at division (mu per division) only moves
    # cells, pos' = -mu d pos and neg' = mu d pos; all counts above 20 (the ODE regime)
    mu = 1e-2
    over = {"leukaemia_growth": 0.0, "antigen_loss_rate": mu, "leukaemia_capacity": 1e30,
            "antigen_negative_birth_ratio": 1.0, "antigen_negative_blasts_initial": 1e6, "emd_present": 0.0}
    p = _values(model, over)
    times = np.linspace(0, 1000, 101)
    tr = run(model, [], times, over, rtol=1e-10)
    pos0, neg0 = p["blasts_initial"], p["antigen_negative_blasts_initial"]
    k = mu * p["blast_death_rate"]
    np.testing.assert_allclose(tr["leukaemia_pos"], pos0 * np.exp(-k * times), rtol=1e-7)
    np.testing.assert_allclose(tr["leukaemia_neg"], neg0 + pos0 * (1 - np.exp(-k * times)), rtol=1e-7)
    np.testing.assert_allclose(tr["blasts_total"], pos0 + neg0, rtol=1e-9)


@pytest.mark.parametrize("name", ["cart_tall", "cart_ball"])
def test_without_antigen_negative_seed_or_loss_there_is_no_antigen_negative_relapse(name):
    model = load_model(MODELS / f"{name}.toml")
    tall = name == "cart_tall"
    seed = "antigen_negative_blasts_initial" if tall else "blast_antigen_negative_fraction"
    over = {seed: 0.0, "antigen_loss_rate": 0.0}
    for method in ("auto", "rodas4"):
        tr = run(model, typical_protocol(model, over), overrides=over, method=method)
        assert np.all(tr["leukaemia_neg"] == 0.0)
        assert np.all(tr["blast_antigen_negative_share"] == 0.0)
    # with an antigen-negative seed the late relapse is antigen-negative (cart_tall: a seed
    # large enough to stay in the ODE regime, so that its fate is not a matter of chance)
    over = {seed: 1e4} if tall else {}
    tr = run(model, typical_protocol(model, over), overrides=over)
    assert at(tr, "marrow_blast_fraction", 28) < 1e-4
    assert at(tr, "marrow_blast_fraction", 730) > 0.05
    assert at(tr, "blast_antigen_negative_share", 730) > 0.99


def test_t_cells_regrow_after_lymphodepletion_as_gompertz(tall):
    over = {"thymic_output": 0.0, "blasts_initial": 0.0}
    p = _values(tall, over)
    times = np.linspace(0, 730, 366)
    tr = run(tall, [lymphodepletion(tall, p, 0.0)], times, over, rtol=1e-10)
    K, r = p["t_capacity"], p["t_homeostasis_rate"]
    t0 = p["normal_t_initial"] * p["lymphodepletion_survival"]
    gompertz = K * np.exp(np.log(t0 / K) * np.exp(-r * times))
    total = tr["normal_t_pos"] + tr["normal_t_neg"]
    np.testing.assert_allclose(total, gompertz, rtol=1e-6)
    # both subsets share the space: the antigen-negative share is unchanged
    np.testing.assert_allclose(tr["normal_t_neg"] / total, p["normal_t_antigen_negative_fraction"], rtol=1e-8)
    np.testing.assert_allclose(tr["cd3_per_ul"], total * p["blood_fraction"] / p["blood_volume_ul"], rtol=1e-12)


def test_b_cells_return_after_lymphodepletion_by_production_and_turnover(ball):
    over = {"blasts_initial": 0.0}
    p = _values(ball, over)
    times = np.linspace(0, 365, 74)
    tr = run(ball, [lymphodepletion(ball, p, 0.0)], times, over, rtol=1e-10)
    steady = p["b_production"] * p["b_lifetime_days"]
    b0 = steady * p["lymphodepletion_survival"]
    expected = steady + (b0 - steady) * np.exp(-times / p["b_lifetime_days"])
    np.testing.assert_allclose(tr["normal_b"], expected, rtol=1e-7)


def test_donor_haematopoiesis_engrafts_logistically_without_host_t_cells(tall):
    # no host T cells (no rejection) and no graft alloreactivity (no clearance of the host):
    # D' = donor_engraftment_rate D (1 - D) from the value the transplant sets
    over = {"normal_t_initial": 0.0, "thymic_output": 0.0, "graft_alloreactivity": 0.0,
            "conditioning_survival_marrow": 0.9}    # reduced marrow kill: engraftment visible
    p = _values(tall, over)
    th = 40.0
    times = np.linspace(0, 400, 401)
    tr = run(tall, [transplant(tall, p, th)], times, over, rtol=1e-10)
    d0 = 1 - (1 - p["donor_haematopoiesis_seed"]) * p["conditioning_survival_marrow"]
    k = p["donor_engraftment_rate"]
    after = times >= th
    logistic = 1 / (1 + (1 / d0 - 1) * np.exp(-k * (times[after] - th)))
    assert np.all(tr["donor_haematopoiesis"][~after] == 0.0)
    np.testing.assert_allclose(tr["donor_haematopoiesis"][after], logistic, rtol=1e-6)


def test_donor_haematopoiesis_fails_against_host_t_cells(tall):
    # many host T cells spared by conditioning, rejection faster than engraftment: graft failure
    over = {"conditioning_survival_lymphocytes": 1.0, "graft_alloreactivity": 0.0,
            "conditioning_survival_marrow": 0.9, "blasts_initial": 0.0, "antigen_negative_blasts_initial": 0.0}
    p = _values(tall, over)
    assert p["graft_rejection_max"] > p["donor_engraftment_rate"]
    times = np.linspace(0, 200, 201)
    tr = run(tall, [transplant(tall, p, 0.0)], times, over, rtol=1e-10)
    d = tr["donor_haematopoiesis"]
    assert np.all(np.diff(d) < 0) and d[-1] < 0.01 * d[0]


# ---------------------------------------------------------------------------- donor source and transplant (signs)

def test_host_versus_graft_rejection_shortens_exposure(tall):
    times = np.linspace(-5, 28, 331)
    auc = {}
    for rate in (0.0, 0.5):
        over = {"rejection_rate": rate}
        tr = run(tall, typical_protocol(tall, over), times, over)
        auc[rate] = np.trapezoid(tr["car_t_per_ul"], times)
    # a sign check: the CAR-T kill the antigen-positive host T cells that would reject them,
    # so with the default half-saturation the loss is modest
    assert auc[0.5] < 0.9 * auc[0.0]


def test_rejection_comes_from_host_t_cells_that_escape_the_car_t(tall):
    # CD7+ host T cells are killed by the CAR-T, CD7- host T cells are not: more CD7- host
    # T cells mean more rejection and less exposure
    times = np.linspace(-5, 60, 651)
    auc = []
    for neg in (0.01, 0.3):
        over = {"rejection_rate": 0.5, "normal_t_antigen_negative_fraction": neg}
        tr = run(tall, typical_protocol(tall, over), times, over)
        auc.append(np.trapezoid(tr["car_t_per_ul"], times))
    assert auc[1] < auc[0]


def test_transplant_graft_t_cells_are_killed_by_surviving_car_t_unless_edited(tall):
    over = {"graft_edited_fraction": 0.5}
    p = _values(tall, over)
    events = typical_protocol(tall, over) + [transplant(tall, p, 60.0, car_survival=1.0)]
    tr = run(tall, events, overrides=over)
    half = 0.5 * p["graft_t_cells"]
    assert at(tr, "graft_t_pos", 60.0) == pytest.approx(half, rel=1e-6)
    assert at(tr, "graft_t_pos", 90.0) < 0.1 * half      # CD7+ graft T cells killed
    assert at(tr, "graft_t_neg", 90.0) > half            # edited graft T cells regrow
    # conditioning that removes the CAR-T spares the CD7+ graft T cells
    events = typical_protocol(tall, over) + [transplant(tall, p, 60.0, car_survival=1e-6)]
    tr2 = run(tall, events, overrides=over)
    assert at(tr2, "graft_t_pos", 90.0) > 10 * at(tr, "graft_t_pos", 90.0)


@pytest.mark.parametrize("name", ["cart_tall", "cart_ball"])
def test_graft_versus_leukaemia_delays_antigen_negative_relapse(name):
    model = load_model(MODELS / f"{name}.toml")
    # cart_tall: antigen-negative blasts seeded large enough to stay in the ODE regime through
    # lymphodepletion and conditioning; no antigen loss; compared on the antigen-negative blasts
    over = {"antigen_negative_blasts_initial": 1e4, "antigen_loss_rate": 0.0} if name == "cart_tall" else {}
    blasts = "leukaemia_neg" if name == "cart_tall" else "blasts_total"
    p = _values(model, over)
    base = typical_protocol(model, over)
    without = run(model, base, overrides=over)
    with_graft = run(model, base + [transplant(model, p, 60.0)], overrides=over)
    nograft = dict(over, graft_t_cells=0.0)
    p0 = _values(model, nograft)
    conditioning_only = run(model, base + [transplant(model, p0, 60.0)], overrides=nograft)
    # conditioning alone cuts the blasts; the graft adds GVL on top
    assert at(conditioning_only, blasts, 300) < at(without, blasts, 300)
    assert at(with_graft, blasts, 300) < at(conditioning_only, blasts, 300)
    assert at(with_graft, blasts, 300) > 0.0
    gvhd = with_graft["gvhd_hazard"]
    assert np.all(gvhd[with_graft.times < 60] == 0.0) and gvhd[with_graft.times > 60].min() > 0.0


# ---------------------------------------------------------------------------- integration accuracy

def _full_protocol(model):
    p = _values(model)
    return typical_protocol(model) + [transplant(model, p, 60.0, car_survival=0.3)]


@pytest.mark.parametrize("method", ["auto", "rodas4"])
@pytest.mark.parametrize("name", ["cart_tall", "cart_ball"])
def test_integration_matches_scipy_radau(name, method, tmp_path):
    path = MODELS / f"{name}.toml"
    # stochastic states: compare their mean-field twin (the same rates as ODEs) with Radau
    model = load_model(deterministic_twin(path, tmp_path) if name == "cart_tall" else path)
    assert not model.stochastic_states
    events = _full_protocol(model)
    times = np.concatenate([np.arange(-5, 60, 0.5), np.arange(60, 401, 2.0)])
    opts = SolverOptions(method=method, rtol=1e-8, extinction=False)
    tr = simulate(model, events, times, options=opts)
    atol = opts.atol_vector(model)
    ref = reference_solve(model, events, times, rtol=1e-10, atol=atol * 1e-2)
    err = scaled_error(tr.states, ref, 1e-8, atol)
    assert err.max() < 20, f"{name}/{method}: max tolerance-scaled error {err.max():.1f}"
    big = np.abs(ref) > 1.0
    rel = np.abs(tr.states - ref)[big] / np.abs(ref)[big]
    assert rel.max() < 1e-6, f"{name}/{method}: max relative error {rel.max():.2e}"


@pytest.mark.parametrize("method", ["rodas4", "auto"])
def test_no_car_t_cells_from_nothing_without_the_growth_guard(tall, method):
    """With no infusion the CAR-T populations are exactly zero forever, even with the models'
    guard against growth from zero switched off (viable_cells -> 0): the stiff solver must not
    seed them with round-off from the other states' stages."""
    guard_off = tall.parameter_vector({"viable_cells": 1e-30}, check_bounds=False)  # below its bounds on purpose
    traj = simulate(tall, [], np.linspace(0.0, 120.0, 7), parameters=guard_off, options=SolverOptions(method=method))
    for s in TALL_CAR:
        assert np.all(traj[s] == 0.0), f"{s}: {traj[s]}"


# ---------------------------------------------------------------------------- stochastic blasts and cytokines

def test_one_antigen_negative_blast_dies_out_with_probability_d_over_b(tall):
    """One antigen-negative blast, no treatment, far below capacity: a linear birth-death
    process with births b = antigen_negative_birth_ratio * (leukaemia_growth + blast_death_rate)
    and deaths d = blast_death_rate, whose lineage dies out with probability d / b exactly."""
    over = {"blasts_initial": 0.0, "antigen_negative_blasts_initial": 1.0, "emd_present": 0.0,
            "leukaemia_growth": 0.2,    # faster than typical, so that clones decide sooner
            "antigen_negative_birth_ratio": 0.6}   # d/b then differs clearly from d/(growth + d)
    p = _values(tall, over)
    b = p["antigen_negative_birth_ratio"] * (p["leukaemia_growth"] + p["blast_death_rate"])
    q = p["blast_death_rate"] / b
    n = 2000
    pars = np.tile(tall.parameter_vector(over, check_bounds=False), (n, 1))
    res = simulate_batch(tall, [], np.array([0.0, 300.0]), pars, seed=11,
                         save_states=["leukaemia_neg"], save_outputs=False)
    assert res.success.all()
    final = res.state("leukaemia_neg")[:, -1]
    assert np.all((final == 0.0) | (final > 20.0))      # every clone decided: extinct or established
    extinct = np.mean(final == 0.0)
    assert abs(extinct - q) < 4 * np.sqrt(q * (1 - q) / n), (extinct, q)


def test_homeostatic_cytokine_follows_lymphocyte_consumption(tall_twin):
    model = tall_twin
    p = _values(model)
    k = p["cytokine_max_fold"]
    tr = run(model, typical_protocol(model))
    # the level is set by consumption: (1 + k) / (1 + k * load), load from the blood counts
    to_blood = p["blood_fraction"] / p["blood_volume_ul"]
    load = (tr["cd3_per_ul"] + tr["nk_per_ul"]) / to_blood / (p["t_capacity"] + p["nk_capacity"])
    np.testing.assert_allclose(tr["homeostatic_cytokine"], (1 + k) / (1 + k * load), rtol=1e-10)
    # it rises after lymphodepletion (FINE starts at the lymphodepletion, day -5), from the
    # level of the untreated host computed from the initial values
    load0 = (p["normal_t_initial"] + p["nk_initial"]) / (p["t_capacity"] + p["nk_capacity"])
    assert at(tr, "homeostatic_cytokine", -5.0) > 2 * (1 + k) / (1 + k * load0)
    # deeper lymphodepletion: more cytokine at infusion and a higher CAR-T peak
    deep = {"lymphodepletion_survival": 0.5 * p["lymphodepletion_survival"]}
    tr_deep = run(model, typical_protocol(model, deep), overrides=deep)
    assert at(tr_deep, "homeostatic_cytokine", 0.0) > at(tr, "homeostatic_cytokine", 0.0)
    assert peak(tr_deep)[1] > peak(tr)[1]
