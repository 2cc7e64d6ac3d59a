"""How an answer is judged: extraction, math equivalence, the code sandbox, the paper's metrics."""
