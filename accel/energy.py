"""The energy formula: event counts of a run and its length -> joules per event kind, static energy, total.

The one place that turns counts into energy; the system engine's counts (:func:`accel.emulator.system.static_events`),
the cost model and the search use it alike. Every count a run can produce is named in :data:`EVENTS`; the energy of one
event of each kind comes from the device's energy table (:class:`~accel.config.EnergyConfig`, numbers and sources in
the presets) and its organisation (row and column sizes, lanes, line width), see :func:`event_energies_pj`. Static
energy is power x time: every PIM channel's background power, the vector unit's, the array's and the rest of the
device's static power, over the run, per device.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .config import DeviceConfig

__all__ = ["EVENTS", "UNITS", "EnergyBreakdown", "event_energies_pj", "static_power_mw", "energy"]

#: Every event count of a run, by name: what one event is. Names start with the unit that counts them.
EVENTS: dict[str, str] = {
    "pim_act_banks": "a bank activated (an all-bank ACT counts every bank); its precharge is in its energy",
    "pim_pre": "a PRE command (energy: in the activate's)",
    "pim_rd_columns": "a column read out of a bank (RD): cell array + internal I/O",
    "pim_wr_columns": "a column written into a bank (WR; an all-bank WR counts every bank): cell array + internal I/O",
    "pim_wrgb_columns": "a column written into the channel's global buffer (WRGB)",
    "pim_gb_read_columns": "a global-buffer column read by a MAC (gb_columns_per_mac per MAC column, broadcast to its "
                           "banks)",
    "pim_mac_columns": "a column read by a bank's MAC unit (cell array, no I/O)",
    "pim_mac_lane_ops": "a weight multiplied by a bank's MAC unit (bit-parallel int8 lanes are charged per MAC)",
    "pim_mac_terms": "a bit-serial lane cycle (a weight of a column in format f takes format_terms(f); 0 for int8 "
                     "lanes)",
    "pim_rdmac_beats": "a MAC register read out of a bank (one column-wide beat over the internal I/O)",
    "pim_ref": "an all-bank refresh of a channel",
    "pim_commands": "a PIM command on the channel's command path (run-length commands expanded)",
    "vector_ops": "a vector op (energy: in its lane operations and buffer accesses)",
    "vector_beats": "a beat of lanes elements (energy: in its lane operations)",
    "vector_lane_ops": "a lane slot of a beat (energy: in the operations below)",
    "vector_add_ops": "a lane doing an add or compare",
    "vector_mul_ops": "a lane doing a multiply",
    "vector_exp_ops": "a lane doing an exponential",
    "vector_act_ops": "a lane doing GELU or SiLU",
    "vector_recips": "a scalar reciprocal or reciprocal square root of a row's statistic",
    "vector_sram_reads": "a line of the vector buffer read",
    "vector_sram_writes": "a line of the vector buffer written",
    "link_transfers": "a link transfer (energy: in its bits)",
    "link_beats": "a link beat (energy: in its bits)",
    "link_bits": "a bit moved over the link (a transfer to every channel without broadcast counts every copy)",
    "array_ops": "an attention-array command (energy: in its MACs)",
    "array_macs": "a PE MAC of the attention array (ATTEND: the QK and SV products)",
    "interconnect_transfers": "a transfer of a device's interconnect port (energy: in its bits)",
    "interconnect_beats": "a beat of an interconnect port (energy: in its bits)",
    "interconnect_bits": "a bit moved between devices over the interconnect",
    "sync_signals": "a SIGNAL (assumption: the sequencers' token registers cost nothing)",
    "sync_waits": "a WAIT (no energy)",
    "sync_marks": "a MARK (no energy)",
}

#: The units energy is reported for (the first part of each event name), plus ``device`` for its static power.
UNITS: tuple[str, ...] = ("pim", "vector", "link", "array", "interconnect", "device")


def event_energies_pj(device: DeviceConfig) -> dict[str, float]:
    """Energy of one event of every kind that costs energy (pJ), from the device's energy table and organisation.
    Events of :data:`EVENTS` missing here cost nothing of their own (the text says where their energy is)."""
    e, p, v = device.energy, device.pim, device.vector
    col, row, line = p.column_bits, p.row_bytes * 8, v.lanes * v.element_bits
    return {
        "pim_act_banks": e.activate_pj_per_row_bit * row,
        "pim_rd_columns": (e.column_read_pj_per_bit + e.column_io_pj_per_bit) * col,
        "pim_wr_columns": (e.column_write_pj_per_bit + e.column_io_pj_per_bit) * col,
        "pim_wrgb_columns": e.gb_write_pj_per_bit * col,
        "pim_gb_read_columns": e.gb_read_pj_per_bit * col,
        "pim_mac_columns": e.column_read_pj_per_bit * col,
        "pim_mac_lane_ops": e.mac_int8_pj if p.lane == "int8" else 0.0,
        "pim_mac_terms": e.mac_term_pj,
        "pim_rdmac_beats": e.column_io_pj_per_bit * col,
        "pim_ref": e.refresh_pj,
        "pim_commands": e.command_pj,
        "vector_add_ops": e.vector_add_pj,
        "vector_mul_ops": e.vector_mul_pj,
        "vector_exp_ops": e.vector_exp_pj,
        "vector_act_ops": e.vector_activation_pj,
        "vector_recips": e.vector_recip_pj,
        "vector_sram_reads": e.vector_sram_read_pj_per_bit * line,
        "vector_sram_writes": e.vector_sram_write_pj_per_bit * line,
        "link_bits": device.link.energy_pj_per_bit,
        "array_macs": e.array_mac_pj,
        "interconnect_bits": device.interconnect.energy_pj_per_bit,
    }


def static_power_mw(device: DeviceConfig, devices: int = 1) -> dict[str, float]:
    """Static power of ``devices`` identical devices by unit (mW): every channel's background power, the vector
    unit's, the array's (none without an array) and the rest of the device's."""
    e = device.energy
    return {"pim": devices * device.pim.channels * e.pim_background_mw,
            "vector": devices * e.vector_static_mw,
            "array": devices * (e.array_static_mw if device.attention is not None else 0.0),
            "device": devices * e.device_static_mw}


@dataclass(frozen=True)
class EnergyBreakdown:
    """The energy of a run.

    Members
    -------
    dynamic_j:
        Event kind -> energy of its events (J), for every kind that costs energy.
    static_j:
        Unit -> static energy over the run (J): ``pim`` (all channels' background), ``vector``, ``array``,
        ``device``.
    seconds:
        Length of the run (s).
    """

    dynamic_j: dict[str, float]
    static_j: dict[str, float]
    seconds: float

    @property
    def dynamic_total_j(self) -> float:
        return sum(self.dynamic_j.values())

    @property
    def static_total_j(self) -> float:
        return sum(self.static_j.values())

    @property
    def total_j(self) -> float:
        return self.dynamic_total_j + self.static_total_j

    def by_unit(self) -> dict[str, float]:
        """Unit (:data:`UNITS`) -> its dynamic and static energy (J)."""
        out = dict.fromkeys(UNITS, 0.0)
        for k, j in self.dynamic_j.items():
            out[k.split("_", 1)[0]] += j
        for k, j in self.static_j.items():
            out[k] += j
        return out

    def to_json(self) -> dict[str, Any]:
        return {"total_j": self.total_j, "dynamic_j": self.dynamic_j, "static_j": self.static_j,
                "by_unit_j": self.by_unit(), "seconds": self.seconds}


def energy(events: Mapping[str, int], device: DeviceConfig, cycles: int, devices: int = 1) -> EnergyBreakdown:
    """The energy of a run of ``cycles`` device (PIM) cycles on ``devices`` identical devices that produced the
    event counts ``events`` (names of :data:`EVENTS`, summed over the devices; a count not given is zero).

    Dynamic energy of a kind = its count x :func:`event_energies_pj`; static energy of a unit = its power
    (:func:`static_power_mw`) x ``cycles * tck``. Raises ``ValueError`` for a count name that is not an event (a
    program's counts and this table out of step)."""
    unknown = sorted(set(events) - set(EVENTS))
    if unknown:
        raise ValueError(f"event count {unknown[0]!r} is not an event of the energy table (accel.energy.EVENTS)")
    per = event_energies_pj(device)
    dynamic = {k: events.get(k, 0) * pj * 1e-12 for k, pj in per.items()}
    seconds = cycles * device.pim.timing.tck_ns * 1e-9
    static = {k: mw * 1e-3 * seconds for k, mw in static_power_mw(device, devices).items()}
    return EnergyBreakdown(dynamic, static, seconds)
