"""Data flow, manifest -> DALI -> torch (installed as ascnet.pipelines): `loader` (TrainLoader,
EvalLoader), `schedules` (what each sample is), `decode` (PyAV reader, swscale cut, the
external-source callables), `train` / `evaluation` (the DALI graphs), `augment` (DALI's side
of the augmentation), `backends` (the one place that picks the decoder), `synthetic`."""
