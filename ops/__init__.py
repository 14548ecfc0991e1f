"""Operations: the local engine stack, starting and stopping the platform, demo data, consumer lag.

Above the dataflow's leaves (it starts topologies and the API) and below the benchmarks and the CLI.
"""
