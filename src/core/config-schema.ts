import { z } from 'zod';
import { configSchema } from './config.js';

/**
 * The JSON Schema of `nines.yaml`, generated from the zod schema (the one definition), so editors
 * (yaml-language-server, VS Code, JetBrains) validate and complete the file. The committed copy in
 * schema/nines.schema.json is checked against this by a test; `nines schema` prints it.
 */
export function configJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(configSchema, {
    // What a person writes: durations as "2s" or milliseconds, defaults optional.
    io: 'input',
    // Transforms have no JSON Schema form; their input side is what matters to an editor.
    unrepresentable: 'any',
  }) as Record<string, unknown>;
  return {
    ...schema,
    $id: 'https://nines.dev/schema/nines.schema.json',
    title: 'nines.yaml',
    description: 'nines configuration: services and how they are deployed. Reference: docs/configuration.md',
  };
}

export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
