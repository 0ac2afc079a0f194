// google.rpc.BadRequest, the error detail stratopt attaches to INVALID_ARGUMENT.
//
// @stratopt/api only contains the files our protos import, and none of them imports
// google/rpc/error_details.proto, so the schema is described here by hand: just the two
// fields we read. Unknown fields (e.g. newer `reason`) are skipped when decoding.

import { create, createFileRegistry, type Message } from "@bufbuild/protobuf";
import type { GenMessage } from "@bufbuild/protobuf/codegenv2";
import {
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";

export type FieldViolation = Message<"google.rpc.BadRequest.FieldViolation"> & {
  /** Path to the bad field, e.g. "strategy.parameters.fast". */
  field: string;
  description: string;
};

export type BadRequest = Message<"google.rpc.BadRequest"> & {
  fieldViolations: FieldViolation[];
};

const stringField = (name: string, number: number) => ({
  name,
  jsonName: name,
  number,
  label: Label.OPTIONAL,
  type: Type.STRING,
});

const errorDetailsFile = create(FileDescriptorProtoSchema, {
  name: "google/rpc/error_details.proto",
  package: "google.rpc",
  syntax: "proto3",
  messageType: [
    {
      name: "BadRequest",
      field: [
        {
          name: "field_violations",
          jsonName: "fieldViolations",
          number: 1,
          label: Label.REPEATED,
          type: Type.MESSAGE,
          typeName: ".google.rpc.BadRequest.FieldViolation",
        },
      ],
      nestedType: [
        { name: "FieldViolation", field: [stringField("field", 1), stringField("description", 2)] },
      ],
    },
  ],
});

/** Pass to `ConnectError.findDetails` to read the field violations of an error. */
export const BadRequestSchema = createFileRegistry(errorDetailsFile, () => undefined).getMessage(
  "google.rpc.BadRequest",
) as GenMessage<BadRequest>;
