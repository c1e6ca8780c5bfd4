"""GEMM timing on the attention array: SCALE-Sim v3 golden counts, bounds between the modes, the CLI, bad input.

GOLDEN holds ``(M, K, N, rows, cols, dataflow, cycles)`` measured with SCALE-Sim 3.0.0 (PyPI ``scalesim``, run in its
own venv with numpy 2.3.5; GEMM topology ``M, N, K``, ``InterfaceBandwidth: CALC``, 64 kB SRAMs; ``cycles`` is its
``Total Cycles`` column, with 0 stall cycles on every shape). ``docs/attention.md`` says how they were produced.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accel.cli import main
from accel.emulator.gemm_reference import simulate_native
from accel.emulator.gemm_timing import DATAFLOWS, gemm_timing, ideal_cycles
from accel.errors import ConfigError, StimulusError

GOLDEN = [
    (1, 1, 1, 1, 1, 'ws', 1),
    (1, 1, 1, 1, 1, 'is', 1),
    (1, 1, 1, 4, 4, 'os', 6),
    (1, 1, 1, 4, 4, 'ws', 10),
    (1, 1, 1, 4, 4, 'is', 10),
    (3, 1, 2, 4, 4, 'os', 6),
    (3, 1, 2, 4, 4, 'ws', 12),
    (3, 1, 2, 4, 4, 'is', 11),
    (1, 17, 1, 4, 4, 'os', 22),
    (1, 17, 1, 4, 4, 'ws', 54),
    (1, 17, 1, 4, 4, 'is', 54),
    (64, 768, 768, 16, 16, 'os', 153215),
    (64, 768, 768, 16, 16, 'ws', 253439),
    (64, 768, 768, 16, 16, 'is', 156287),
    (128, 64, 32, 8, 8, 'os', 4991),
    (128, 64, 32, 8, 8, 'ws', 4799),
    (128, 64, 32, 8, 8, 'is', 6911),
    (17, 33, 9, 8, 4, 'os', 386),
    (17, 33, 9, 8, 4, 'ws', 524),
    (17, 33, 9, 8, 4, 'is', 674),
    (7, 5, 3, 3, 5, 'os', 32),
    (7, 5, 3, 3, 5, 'ws', 31),
    (7, 5, 3, 3, 5, 'is', 47),
    (256, 16, 16, 16, 16, 'os', 735),
    (256, 16, 16, 16, 16, 'ws', 301),
    (256, 16, 16, 16, 16, 'is', 991),
    (16, 16, 256, 16, 16, 'os', 735),
    (16, 16, 256, 16, 16, 'ws', 991),
    (16, 16, 256, 16, 16, 'is', 301),
    (16, 256, 16, 16, 16, 'os', 285),
    (16, 256, 16, 16, 16, 'ws', 991),
    (16, 256, 16, 16, 16, 'is', 991),
    (100, 3, 1, 4, 8, 'os', 324),
    (100, 3, 1, 4, 8, 'ws', 113),
    (100, 3, 1, 4, 8, 'is', 194),
    (1, 100, 3, 8, 4, 'os', 109),
    (1, 100, 3, 8, 4, 'ws', 246),
    (1, 100, 3, 8, 4, 'is', 272),
    (33, 65, 129, 32, 32, 'os', 1269),
    (33, 65, 129, 32, 32, 'ws', 1904),
    (33, 65, 129, 32, 32, 'is', 1337),
    (8, 8, 8, 8, 8, 'os', 21),
    (8, 8, 8, 8, 8, 'ws', 29),
    (8, 8, 8, 8, 8, 'is', 29),
    (9, 9, 9, 8, 8, 'os', 91),
    (9, 9, 9, 8, 8, 'ws', 123),
    (9, 9, 9, 8, 8, 'is', 123),
    (31, 7, 19, 2, 16, 'os', 735),
    (31, 7, 19, 2, 16, 'ws', 391),
    (31, 7, 19, 2, 16, 'is', 295),
    (2, 300, 2, 16, 2, 'os', 315),
    (2, 300, 2, 16, 2, 'ws', 645),
    (2, 300, 2, 16, 2, 'is', 645),
    (200, 2, 2, 1, 1, 'os', 799),
    (200, 2, 2, 1, 1, 'ws', 803),
    (200, 2, 2, 1, 1, 'is', 1199),
    (5, 5, 5, 1, 7, 'os', 54),
    (5, 5, 5, 1, 7, 'ws', 59),
    (5, 5, 5, 1, 7, 'is', 59),
    (133, 32, 184, 12, 16, 'os', 8351),
    (1, 129, 39, 32, 3, 'os', 2105),
    (1, 23, 105, 2, 8, 'ws', 1847),
    (1, 205, 1, 16, 6, 'os', 224),
    (1, 73, 1, 8, 2, 'ws', 169),
    (155, 64, 1, 32, 32, 'is', 949),
    (47, 163, 1, 32, 6, 'os', 397),
    (40, 46, 1, 3, 1, 'os', 671),
    (142, 111, 215, 32, 16, 'ws', 12319),
    (23, 40, 1, 16, 32, 'os', 171),
    (8, 11, 1, 1, 6, 'is', 153),
    (274, 1, 1, 4, 1, 'ws', 280),
    (19, 1, 1, 2, 8, 'is', 32),
    (218, 1, 37, 1, 1, 'ws', 8102),
    (32, 21, 1, 8, 16, 'ws', 185),
    (87, 30, 11, 8, 32, 'is', 683),
    (227, 12, 292, 5, 2, 'ws', 103805),
    (79, 235, 172, 8, 16, 'os', 28269),
    (9, 148, 68, 32, 6, 'ws', 4619),
    (1, 1, 115, 12, 16, 'ws', 311),
    (206, 215, 3, 12, 16, 'os', 4337),
    (29, 1, 32, 5, 3, 'ws', 439),
    (281, 1, 26, 1, 16, 'os', 8991),
    (271, 1, 39, 4, 1, 'ws', 10841),
    (204, 6, 29, 3, 2, 'os', 9179),
    (8, 1, 133, 32, 8, 'ws', 1325),
    (254, 30, 1, 8, 1, 'ws', 1075),
    (9, 22, 174, 5, 1, 'os', 9047),
    (77, 19, 36, 1, 6, 'os', 11087),
    (1, 34, 26, 16, 4, 'ws', 734),
    (36, 1, 60, 2, 2, 'ws', 1199),
    (172, 86, 193, 12, 1, 'os', 280814),
    (1, 1, 285, 2, 2, 'ws', 714),
    (38, 1, 1, 16, 32, 'ws', 99),
    (33, 2, 13, 4, 8, 'ws', 93),
    (111, 1, 30, 5, 4, 'is', 1175),
    (1, 208, 28, 3, 2, 'is', 2379),
    (104, 1, 22, 8, 32, 'os', 506),
    (17, 151, 1, 32, 3, 'is', 1979),
    (1, 20, 1, 1, 2, 'is', 59),
    (196, 18, 266, 16, 8, 'os', 17679),
    (275, 27, 1, 12, 4, 'is', 5588),
    (260, 1, 32, 1, 3, 'ws', 2892),
    (84, 9, 1, 12, 16, 'ws', 121),
    (42, 10, 3, 12, 3, 'ws', 66),
    (1, 68, 54, 1, 2, 'is', 3807),
    (1, 240, 64, 8, 4, 'is', 2459),
    (151, 1, 3, 5, 3, 'ws', 161),
    (1, 3, 267, 4, 32, 'is', 304),
    (258, 216, 1, 4, 4, 'ws', 14471),
    (1, 1, 2, 12, 2, 'is', 25),
    (167, 17, 5, 12, 1, 'is', 9351),
    (1, 1, 1, 1, 8, 'os', 7),
    (1, 1, 1, 4, 2, 'ws', 8),
    (1, 24, 152, 8, 6, 'is', 515),
    (1, 35, 1, 8, 3, 'os', 43),
    (1, 12, 1, 4, 8, 'is', 44),
    (1, 154, 73, 1, 16, 'ws', 13089),
    (6, 1, 1, 5, 8, 'ws', 21),
    (14, 1, 1, 8, 32, 'is', 46),
    (26, 1, 175, 3, 32, 'os', 1835),
    (1, 1, 1, 8, 32, 'os', 38),
    (280, 218, 48, 5, 2, 'ws', 306239),
    (1, 1, 204, 4, 16, 'is', 225),
    (7, 101, 1, 12, 32, 'ws', 548),
    (1, 11, 145, 5, 8, 'os', 417),
    (35, 207, 18, 32, 4, 'ws', 3534),
    (8, 1, 36, 3, 3, 'is', 128),
    (14, 33, 4, 16, 16, 'os', 62),
    (1, 23, 1, 16, 1, 'is', 63),
    (1, 8, 1, 2, 16, 'is', 75),
    (7, 1, 216, 5, 4, 'is', 455),
    (76, 1, 12, 12, 3, 'ws', 403),
    (1, 105, 1, 12, 32, 'os', 146),
    (30, 120, 45, 2, 3, 'is', 29999),
    (1, 281, 28, 5, 8, 'ws', 3875),
    (14, 1, 1, 5, 32, 'ws', 53),
    (220, 204, 1, 1, 3, 'ws', 45491),
    (166, 30, 1, 2, 2, 'os', 2655),
    (14, 13, 160, 8, 2, 'ws', 4799),
    (1, 1, 1, 5, 32, 'is', 40),
    (27, 1, 1, 16, 1, 'os', 31),
    (29, 1, 12, 12, 4, 'os', 134),
    (23, 7, 1, 3, 6, 'is', 131),
    (237, 1, 61, 5, 32, 'is', 807),
    (1, 4, 35, 2, 3, 'os', 83),
    (61, 1, 1, 2, 16, 'is', 75),
    (158, 21, 147, 4, 2, 'os', 73999),
    (36, 300, 2, 3, 1, 'os', 7247),
    (9, 1, 9, 3, 2, 'ws', 74),
    (14, 39, 1, 3, 32, 'os', 359),
    (247, 21, 206, 32, 3, 'os', 29807),
    (1, 162, 16, 8, 6, 'is', 755),
    (23, 183, 30, 4, 6, 'is', 7727),
    (252, 1, 1, 3, 8, 'is', 415),
    (177, 1, 1, 8, 2, 'ws', 192),
    (22, 1, 273, 5, 3, 'is', 2271),
    (37, 1, 71, 16, 1, 'is', 3773),
    (1, 1, 1, 32, 3, 'is', 65),
    (54, 77, 39, 2, 16, 'ws', 8423),
    (1, 150, 1, 12, 1, 'is', 311),
    (26, 1, 20, 8, 3, 'is', 332),
    (293, 17, 26, 16, 1, 'ws', 16847),
    (140, 131, 149, 16, 1, 'os', 195785),
    (1, 8, 273, 32, 8, 'ws', 2484),
    (5, 1, 23, 3, 3, 'is', 59),
    (207, 1, 1, 5, 8, 'ws', 222),
    (246, 1, 36, 3, 8, 'os', 4099),
    (81, 259, 35, 32, 3, 'ws', 15767),
    (220, 133, 34, 5, 6, 'ws', 37907),
    (4, 10, 1, 4, 16, 'is', 68),
    (186, 100, 1, 12, 4, 'is', 11420),
    (18, 5, 231, 4, 4, 'is', 2409),
    (1, 28, 17, 2, 4, 'is', 321),
    (20, 1, 26, 8, 2, 'is', 419),
    (38, 65, 1, 12, 1, 'ws', 365),
    (42, 1, 98, 16, 3, 'os', 1781),
    (1, 1, 209, 32, 32, 'os', 440),
    (1, 1, 24, 3, 16, 'is', 43),
    (177, 42, 1, 1, 16, 'ws', 8105),
    (1, 35, 30, 8, 3, 'os', 439),
    (1, 47, 31, 1, 2, 'os', 767),
    (37, 1, 36, 4, 1, 'ws', 1583),
    (158, 53, 37, 3, 2, 'os', 56391),
    (31, 255, 35, 32, 2, 'ws', 13679),
    (1, 42, 20, 16, 8, 'ws', 350),
    (1, 1, 22, 16, 6, 'ws', 147),
    (36, 180, 32, 1, 2, 'os', 104255),
    (1, 296, 146, 2, 6, 'ws', 33299),
    (1, 40, 4, 8, 1, 'os', 187),
    (1, 11, 1, 4, 16, 'ws', 68),
    (184, 1, 1, 32, 6, 'os', 221),
    (32, 1, 27, 4, 1, 'is', 1087),
    (33, 36, 1, 8, 3, 'ws', 249),
    (1, 1, 1, 12, 1, 'os', 11),
    (1, 1, 178, 3, 2, 'ws', 622),
    (8, 31, 1, 16, 2, 'is', 263),
    (83, 106, 76, 8, 6, 'is', 18815),
    (134, 24, 273, 1, 6, 'is', 154007),
    (1, 1, 34, 8, 4, 'is', 51),
    (18, 13, 1, 1, 1, 'os', 233),
    (31, 248, 40, 2, 4, 'is', 45631),
    (199, 1, 1, 8, 2, 'is', 1699),
    (44, 1, 78, 12, 32, 'ws', 293),
    (80, 1, 53, 3, 32, 'is', 266),
    (1, 17, 124, 3, 16, 'ws', 1007),
    (32, 235, 38, 5, 16, 'is', 5827),
    (1, 94, 1, 3, 3, 'os', 97),
    (36, 272, 55, 16, 2, 'os', 24191),
    (1, 232, 2, 4, 4, 'ws', 637),
    (232, 245, 16, 32, 4, 'is', 38047),
    (1, 26, 5, 4, 32, 'os', 59),
    (80, 24, 1, 4, 6, 'is', 1091),
    (84, 83, 28, 2, 16, 'ws', 8567),
    (1, 24, 36, 12, 4, 'is', 123),
    (265, 1, 1, 1, 16, 'os', 4239),
    (3, 217, 1, 5, 6, 'is', 659),
    (21, 4, 1, 32, 32, 'is', 94),
    (1, 17, 174, 2, 6, 'ws', 2348),
    (270, 1, 1, 5, 3, 'os', 377),
    (34, 257, 12, 5, 6, 'os', 3723),
    (10, 1, 1, 5, 1, 'ws', 18),
    (32, 158, 14, 2, 16, 'os', 2783),
    (1, 37, 1, 3, 16, 'os', 53),
    (145, 1, 1, 2, 16, 'ws', 162),
    (17, 1, 1, 16, 1, 'ws', 47),
    (1, 143, 128, 3, 1, 'os', 18559),
    (6, 38, 2, 2, 6, 'is', 189),
    (1, 39, 32, 4, 2, 'is', 399),
    (220, 72, 1, 3, 1, 'is', 31679),
    (1, 24, 1, 4, 2, 'is', 53),
    (1, 36, 1, 1, 4, 'is', 179),
    (1, 121, 119, 32, 2, 'is', 731),
    (25, 24, 40, 16, 32, 'os', 279),
    (1, 1, 138, 8, 6, 'os', 298),
    (19, 30, 1, 4, 32, 'ws', 455),
    (2, 5, 1, 2, 32, 'os', 36),
    (10, 68, 1, 2, 2, 'is', 849),
    (32, 1, 32, 8, 4, 'ws', 399),
    (23, 1, 21, 3, 16, 'os', 287),
    (19, 5, 38, 4, 1, 'ws', 1975),
    (1, 1, 224, 5, 1, 'ws', 2239),
    (15, 284, 1, 4, 8, 'is', 2129),
    (71, 1, 1, 12, 32, 'ws', 124),
    (19, 208, 16, 12, 8, 'is', 2483),
    (1, 14, 36, 12, 2, 'ws', 899),
    (1, 1, 1, 16, 16, 'ws', 46),
    (1, 2, 1, 4, 8, 'ws', 14),
    (4, 1, 271, 5, 8, 'os', 407),
    (16, 29, 1, 2, 6, 'ws', 359),
    (1, 34, 1, 16, 32, 'os', 79),
    (44, 1, 1, 3, 2, 'is', 153),
    (271, 1, 154, 5, 3, 'is', 15014),
    (115, 6, 20, 4, 16, 'ws', 547),
    (121, 16, 1, 4, 32, 'os', 1549),
    (1, 1, 18, 16, 16, 'ws', 93),
    (1, 1, 1, 12, 8, 'ws', 30),
    (30, 56, 1, 4, 4, 'ws', 559),
    (39, 1, 39, 12, 1, 'os', 1871),
    (231, 1, 1, 1, 3, 'os', 692),
    (160, 25, 1, 32, 32, 'os', 434),
    (6, 1, 25, 2, 6, 'ws', 69),
    (31, 1, 187, 2, 1, 'ws', 6357),
    (1, 25, 5, 1, 16, 'os', 39),
    (24, 40, 21, 2, 8, 'os', 1727),
    (15, 30, 1, 2, 1, 'ws', 269),
    (78, 16, 186, 3, 1, 'os', 87047),
    (1, 34, 247, 32, 4, 'is', 625),
    (1, 1, 7, 8, 3, 'is', 23),
    (15, 121, 35, 16, 3, 'ws', 4607),
    (131, 17, 1, 5, 6, 'os', 701),
    (38, 5, 260, 3, 6, 'os', 6863),
    (1, 31, 24, 2, 32, 'os', 62),
    (1, 191, 230, 2, 1, 'ws', 88319),
    (1, 3, 1, 1, 2, 'ws', 8),
    (1, 95, 1, 1, 4, 'os', 97),
    (1, 1, 47, 16, 32, 'os', 93),
    (146, 1, 20, 12, 6, 'ws', 695),
    (24, 1, 28, 12, 1, 'os', 671),
    (37, 1, 1, 2, 16, 'is', 56),
    (190, 1, 1, 12, 2, 'is', 2374),
    (7, 1, 3, 3, 2, 'os', 23),
    (83, 208, 1, 12, 2, 'is', 18899),
    (1, 1, 127, 4, 1, 'os', 507),
    (21, 234, 20, 1, 1, 'is', 103193),
    (25, 1, 2, 4, 16, 'ws', 46),
    (1, 1, 5, 16, 4, 'ws', 69),
    (259, 21, 43, 8, 2, 'ws', 18149),
    (4, 1, 1, 32, 2, 'os', 32),
    (1, 1, 21, 16, 6, 'os', 83),
    (135, 33, 1, 5, 32, 'os', 1835),
    (18, 1, 25, 12, 3, 'ws', 386),
    (275, 26, 189, 16, 2, 'os', 71819),
    (1, 12, 34, 8, 8, 'is', 111),
    (1, 19, 1, 8, 1, 'os', 25),
    (1, 2, 1, 16, 4, 'is', 34),
    (27, 1, 1, 8, 4, 'os', 43),
    (1, 75, 18, 1, 4, 'os', 389),
    (39, 266, 1, 1, 8, 'os', 10646),
    (35, 1, 1, 1, 1, 'is', 69),
    (1000, 1, 1, 8, 8, 'os', 1874),
    (1000, 1, 1, 8, 8, 'ws', 1021),
    (1000, 1, 1, 8, 8, 'is', 2874),
    (1, 1000, 1, 8, 8, 'os', 1013),
    (1, 1000, 1, 8, 8, 'ws', 2874),
    (1, 1000, 1, 8, 8, 'is', 2874),
    (1, 1, 1000, 8, 8, 'os', 1874),
    (1, 1, 1000, 8, 8, 'ws', 2874),
    (1, 1, 1000, 8, 8, 'is', 1021),
    (100, 100, 100, 64, 64, 'os', 903),
    (100, 100, 100, 64, 64, 'ws', 1159),
    (100, 100, 100, 64, 64, 'is', 1159),
    (200, 50, 300, 128, 32, 'os', 4159),
    (200, 50, 300, 128, 32, 'ws', 4859),
    (200, 50, 300, 128, 32, 'is', 4101),
    (200, 50, 300, 32, 128, 'os', 4367),
    (200, 50, 300, 32, 128, 'ws', 2339),
    (200, 50, 300, 32, 128, 'is', 1959),
    (63, 65, 127, 1, 16, 'os', 40319),
    (63, 65, 127, 1, 16, 'ws', 41079),
    (63, 65, 127, 1, 16, 'is', 37179),
    (63, 65, 127, 16, 1, 'os', 40639),
    (63, 65, 127, 16, 1, 'ws', 59689),
    (63, 65, 127, 16, 1, 'is', 49769),
    (2, 2, 2, 3, 3, 'os', 5),
    (2, 2, 2, 3, 3, 'ws', 8),
    (2, 2, 2, 3, 3, 'is', 8),
    (1, 2, 1, 1, 1, 'os', 1),
    (2, 1, 1, 1, 1, 'os', 1),
    (1, 1, 2, 1, 1, 'os', 1),
    (512, 128, 128, 16, 16, 'os', 40447),
    (512, 128, 128, 16, 16, 'ws', 35711),
    (512, 128, 128, 16, 16, 'is', 44543),
    (300, 300, 300, 64, 64, 'os', 10649),
    (300, 300, 300, 64, 64, 'ws', 12249),
    (300, 300, 300, 64, 64, 'is', 12249),
    (200, 129, 77, 128, 128, 'os', 765),
    (200, 129, 77, 128, 128, 'ws', 1163),
    (200, 129, 77, 128, 128, 'is', 1835),
    (300, 300, 300, 256, 256, 'os', 3239),
    (300, 300, 300, 256, 256, 'ws', 4263),
    (300, 300, 300, 256, 256, 'is', 4263),
    (97, 333, 65, 32, 8, 'os', 13355),
    (97, 333, 65, 32, 8, 'ws', 16532),
    (97, 333, 65, 32, 8, 'is', 19304),
    (4096, 16, 16, 16, 16, 'os', 11775),
    (4096, 16, 16, 16, 16, 'ws', 4141),
    (4096, 16, 16, 16, 16, 'is', 15871),
    (16, 16, 4096, 16, 16, 'os', 11775),
    (16, 16, 4096, 16, 16, 'ws', 15871),
    (16, 16, 4096, 16, 16, 'is', 4141),
    (33, 1, 33, 7, 9, 'os', 299),
    (33, 1, 33, 7, 9, 'ws', 215),
    (33, 1, 33, 7, 9, 'is', 215),
]


@pytest.mark.parametrize("M,K,N,R,C,df,cycles", GOLDEN)
def test_scalesim_mode_equals_scalesim(M, K, N, R, C, df, cycles):
    assert gemm_timing(M, K, N, R, C, df, "scalesim").cycles == cycles


dims = st.integers(1, 3000)
arr = st.integers(1, 300)


@settings(max_examples=500, deadline=None)
@given(dims, dims, dims, arr, arr, st.sampled_from(["native", "scalesim"]))
def test_input_stationary_is_weight_stationary_on_the_transposed_gemm(M, K, N, R, C, timing):
    """``is`` holds the inputs as ``ws`` holds the weights: ``(M x K) @ (K x N)`` input-stationary costs what
    ``(N x K) @ (K x M)`` does weight-stationary, in both modes; SCALE-Sim's output-stationary count is the same on
    the transposed GEMM with the array turned (every fold pays ``T + R + C - 2`` lines)."""
    t = gemm_timing(M, K, N, R, C, "is", timing)
    w = gemm_timing(N, K, M, R, C, "ws", timing)
    assert (t.cycles, t.folds, t.spatial_rows, t.spatial_cols, t.temporal) == \
        (w.cycles, w.folds, w.spatial_rows, w.spatial_cols, w.temporal)
    if timing == "scalesim":
        assert gemm_timing(M, K, N, R, C, "os", timing).cycles == gemm_timing(N, K, M, C, R, "os", timing).cycles


@settings(max_examples=2000, deadline=None)
@given(dims, dims, dims, arr, arr, st.sampled_from(DATAFLOWS))
def test_native_between_ideal_and_scalesim(M, K, N, R, C, df):
    nat = gemm_timing(M, K, N, R, C, df, "native")
    ss = gemm_timing(M, K, N, R, C, df, "scalesim")
    ideal = math.ceil(M * K * N / (R * C))
    assert nat.ideal_cycles == ss.ideal_cycles == ideal == ideal_cycles(M, K, N, R, C)
    assert ideal <= nat.cycles
    # SCALE-Sim reports the last cycle index: its cycle count is that plus one
    assert nat.cycles <= ss.cycles + 1
    assert ideal <= ss.cycles + 1
    assert 0 < nat.utilisation <= 1.0
    assert nat.folds == ss.folds


@settings(max_examples=300, deadline=None)
@given(dims, dims, dims, arr, arr, st.sampled_from(DATAFLOWS))
def test_native_overlaps_folds(M, K, N, R, C, df):
    """More than one fold: native saves at least the fill and drain of every fold but one."""
    nat = gemm_timing(M, K, N, R, C, df, "native")
    ss = gemm_timing(M, K, N, R, C, df, "scalesim")
    if nat.folds > 1:
        assert nat.cycles <= ss.cycles + 1 - (nat.folds - 1) * (R + C - 2)


def test_native_large_gemm_is_near_ideal():
    t = gemm_timing(64, 768, 768, 16, 16, "os", "native")
    assert t.cycles == 192 * 768 + 30
    assert t.utilisation > 0.999


def test_mapping_follows_scalesim():
    t = gemm_timing(5, 7, 3, 4, 2, "is", "scalesim")
    assert (t.spatial_rows, t.spatial_cols, t.temporal, t.folds) == (7, 5, 3, 6)
    t = gemm_timing(5, 7, 3, 4, 2, "ws", "scalesim")
    assert (t.spatial_rows, t.spatial_cols, t.temporal, t.folds) == (7, 3, 5, 4)


def test_cli_json(capsys):
    assert main(["array", "gemm", "--M", "64", "--K", "768", "--N", "768", "--rows", "16", "--cols", "16",
                 "--dataflow", "ws", "--timing", "scalesim", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cycles"] == 253439 and out["counted_cycles"] == 253440
    assert out["utilisation"] == pytest.approx(64 * 768 * 768 / (256 * 253440))
    assert out["scalesim_utilisation"] == pytest.approx(64 * 768 * 768 / (256 * 253439))


def test_cli_text(capsys):
    assert main(["array", "gemm", "--M", "5", "--K", "7", "--N", "3", "--rows", "4", "--cols", "2"]) == 0
    out = capsys.readouterr().out
    assert "  cycles       28 (first operand in to last MAC, inclusive)\n" in out
    assert f"  utilisation  {100 * 105 / (8 * 28):.2f}% (105 MACs over 4x2 PEs x 28 cycles; " in out


def test_cli_preset(capsys):
    assert main(["array", "gemm", "--M", "8", "--K", "8", "--N", "8", "--preset", "fpga-small", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["rows"], out["cols"]) == (4, 4)


@pytest.mark.parametrize("argv,msg", [
    (["--M", "4", "--K", "4", "--N", "4", "--rows", "4", "--cols", "1000000"],
     "cols = 1000000: must be between 1 and 65536; give the array size in PEs"),
    (["--M", "4", "--K", "4", "--N", "4", "--rows", "4"],
     "--cols is missing: give the array size with --rows and --cols, or --device"),
    (["--M", "4", "--K", "4", "--N", "4", "--device", "aim-gddr6"],
     "preset aim-gddr6 has no attention array; give --rows and --cols, or pick a preset with one (accel devices)"),
])
def test_cli_bad_input(capsys, argv, msg):
    assert main(["array", "gemm", *argv]) == 2
    err = capsys.readouterr().err
    assert err == f"accel: error: {msg}\n"


def test_bad_input_errors():
    with pytest.raises(StimulusError, match=r"^K = -3: must be between 1 and 16777216"):
        gemm_timing(4, -3, 4, 4, 4)
    with pytest.raises(StimulusError, match=r"^N = 2.5: must be an integer"):
        gemm_timing(4, 4, 2.5, 4, 4)
    with pytest.raises(ConfigError, match=r"^cols = 0: must be between 1 and 65536"):
        gemm_timing(4, 4, 4, 4, 0)
    with pytest.raises(StimulusError, match=r"^dataflow = 'rs': must be one of os, ws, is"):
        gemm_timing(4, 4, 4, 4, 4, "rs")
    with pytest.raises(StimulusError, match=r"^timing = 'fast': must be one of native, scalesim"):
        gemm_timing(4, 4, 4, 4, 4, "os", "fast")


def test_native_count_equals_register_level_simulation():
    """Operands moved PE by PE with the native schedule: the product is right, every MAC is done once, and the last
    MAC falls on the closed form's cycle (ragged folds, R != C, tall and skinny shapes)."""
    rng = np.random.default_rng(0)
    shapes = [(1, 1, 1, 1, 1), (1, 9, 1, 3, 2), (11, 1, 7, 3, 1), (7, 5, 3, 3, 5), (16, 8, 8, 4, 4), (2, 2, 2, 5, 5)]
    shapes += [tuple(int(x) for x in rng.integers(1, 13, 3)) + tuple(int(x) for x in rng.integers(1, 6, 2))
               for _ in range(60)]
    for M, K, N, R, C in shapes:
        a, b = rng.integers(-9, 9, (M, K)), rng.integers(-9, 9, (K, N))
        for df in DATAFLOWS:
            run = simulate_native(a, b, R, C, df)
            assert (run.out == a @ b).all(), (M, K, N, R, C, df)
            assert run.macs == M * K * N
            assert run.cycles == gemm_timing(M, K, N, R, C, df, "native").cycles, (M, K, N, R, C, df)


def test_native_exceeds_the_reported_index_only_on_one_full_fold_or_a_1x1_array():
    for M in range(1, 10):
        for K in (1, 2, 5):
            for N in range(1, 10):
                for R in range(1, 5):
                    for C in range(1, 5):
                        for df in DATAFLOWS:
                            nat = gemm_timing(M, K, N, R, C, df, "native")
                            ss = gemm_timing(M, K, N, R, C, df, "scalesim")
                            if nat.cycles > ss.cycles:
                                assert nat.cycles == ss.cycles + 1
                                assert (R, C) == (1, 1) or (nat.folds == 1 and nat.spatial_rows == R
                                                            and nat.spatial_cols == C)
