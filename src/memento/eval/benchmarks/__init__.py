"""What is asked: problems, benchmark sources and schemas, prompts."""
