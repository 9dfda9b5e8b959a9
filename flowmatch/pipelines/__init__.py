"""Flow pipelines built from several stages (one subpackage per pipeline)."""
