"""Support for testing the course's code, used by the tests, the lab checks and the chapters that
teach testing (chapter 11's differential tests against the interpreter).

* `random_graphs`: random small, valid integer models (`IntModel`) and inputs, drawn straight
  from the specification, to compare an implementation (the C engine, a memory plan) with the
  reference interpreter on shapes nobody thought of.
"""
