"""Attack tests: one module per class of defect (issue 11). Each test is named after the
attack it tries and runs real processes on 127.0.0.1."""
