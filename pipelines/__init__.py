"""Data flow: DALI graphs that sample, decode and augment clips (installed as ascnet.pipelines)."""
