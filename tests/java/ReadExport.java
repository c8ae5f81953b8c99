// Reads a `ledger export` file with Apache Avro for Java (the reference implementation).
//
// Usage: java -cp <avro jars> ReadExport.java <file.avro>
// Opens it with DataFileReader, reads the metadata (format, ledger head, event schemas),
// decodes every record's single-object encoded event with the BinaryMessageDecoder of its
// writer schema (picked by the fingerprint in its header; schemas from the metadata), and checks that the decoded
// event_id equals the record's. Prints one JSON line:
// {"records":N,"events":E,"decoded":D,"mismatched":M,"head":"...","format":"...",
//  "first_event_id":"..."}

import java.io.File;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.file.DataFileReader;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.SchemaStore;

public class ReadExport {
    public static void main(String[] args) throws Exception {
        DataFileReader<GenericRecord> reader =
            new DataFileReader<>(new File(args[0]), new GenericDatumReader<>());
        SchemaStore.Cache store = new SchemaStore.Cache();
        java.util.Map<Long, BinaryMessageDecoder<GenericRecord>> decoders =
            new java.util.HashMap<>();
        String json = reader.getMetaString("ledger.event_schemas");
        com.fasterxml.jackson.databind.JsonNode list =
            new com.fasterxml.jackson.databind.ObjectMapper().readTree(json);
        for (com.fasterxml.jackson.databind.JsonNode node : list) {
            Schema schema = new Schema.Parser().parse(node.toString());
            store.addSchema(schema);
            decoders.put(SchemaNormalization.parsingFingerprint64(schema),
                         new BinaryMessageDecoder<>(GenericData.get(), schema, store));
        }
        long records = 0, events = 0, decoded = 0, mismatched = 0;
        String first = null;
        for (GenericRecord record : reader) {
            records++;
            if (record.get("kind").toString().equals("event")) {
                events++;
            }
            Object avro = record.get("avro");
            if (avro != null) {
                java.nio.ByteBuffer bytes = (java.nio.ByteBuffer) avro;
                long fingerprint = bytes.duplicate().order(java.nio.ByteOrder.LITTLE_ENDIAN)
                    .getLong(bytes.position() + 2);
                GenericRecord event = decoders.get(fingerprint).decode(bytes);
                decoded++;
                String id = event.get("event_id").toString();
                if (first == null) {
                    first = id;
                }
                if (!id.equals(String.valueOf(record.get("event_id")))) {
                    mismatched++;
                }
            }
        }
        System.out.println("{\"records\":" + records + ",\"events\":" + events
            + ",\"decoded\":" + decoded + ",\"mismatched\":" + mismatched
            + ",\"head\":\"" + reader.getMetaString("ledger.head") + "\",\"format\":\""
            + reader.getMetaString("ledger.format") + "\",\"first_event_id\":\"" + first + "\"}");
        reader.close();
    }
}
