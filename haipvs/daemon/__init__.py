"""The daemon layer: pure cores the supervisor executes, and the adapters around them."""
