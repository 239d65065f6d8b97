"""marshmallow schemas of the Kowabunga API contract, one module per resource."""
