"""sdfb: self-distillation with feedback. The library: pure, typed stage functions; never imports prefect."""

__version__ = "0.1.0"
