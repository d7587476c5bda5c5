"""Extensions written the way a user writes one: one file each, registered on import."""
