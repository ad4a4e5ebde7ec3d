"""The design space and its models: configs, search spaces, the Keras builder, costs and latency
on the training device."""
