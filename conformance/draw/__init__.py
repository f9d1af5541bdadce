"""What hypothesis draws: case specs, strategies for shapes, weights and inputs, the operator and
model cases, real photographs."""
