"""Recipes: whole tasks composed from the library (simulate, explain, evaluate, draw), each behind one ``tomocam``
command. They sit beside the CLI, not inside the pipeline, which knows nothing of simulations or figures."""
