"""canarytrace analysis: canary comparison, verdicts, reports, replay and the demo."""
