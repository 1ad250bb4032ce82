"""Pure planning: desired and observed state in, actions and status out."""
