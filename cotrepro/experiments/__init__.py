"""One module per pipeline step, named as the step (see `cotrepro.steps`): its params schema
`Params`, the functions its notebook calls in order, and the test of each of its claims. No
experiment module imports another; what two steps share lives in the engine."""
