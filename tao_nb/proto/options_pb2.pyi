from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor
HELP_FIELD_NUMBER: _ClassVar[int]
help: _descriptor.FieldDescriptor
RANGE_FIELD_NUMBER: _ClassVar[int]
range: _descriptor.FieldDescriptor
CHOICES_FIELD_NUMBER: _ClassVar[int]
choices: _descriptor.FieldDescriptor
MANDATORY_FIELD_NUMBER: _ClassVar[int]
mandatory: _descriptor.FieldDescriptor
ALIAS_OF_FIELD_NUMBER: _ClassVar[int]
alias_of: _descriptor.FieldDescriptor
