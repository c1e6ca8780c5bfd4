"""accel: hardware/software co-design for transformer inference on PIM and dataflow hardware."""
__version__ = "0.1.0"
