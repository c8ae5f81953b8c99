// Cross-check of the golden vectors with Apache Avro for Java (the reference implementation).
//
// Usage: java -cp <avro jars> CheckVectors.java <schemas dir> <vectors dir>
// For every <type>.v<n>.avsc: parses it, computes its CRC-64-AVRO fingerprint with
// SchemaNormalization, and decodes <type>.v<n>.hex with BinaryMessageDecoder and a
// SchemaStore.Cache holding every schema. Re-encodes the record with BinaryMessageEncoder
// and requires the same bytes. Prints one line per vector: name, fingerprint (hex of the
// unsigned 64-bit value), "bytes-equal", and the record as JSON (Avro's toString).
// Exits 1 on any mismatch.

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.List;
import java.util.stream.Stream;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.BinaryMessageEncoder;
import org.apache.avro.message.SchemaStore;

public class CheckVectors {
    public static void main(String[] args) throws Exception {
        Path schemas = Path.of(args[0]);
        Path vectors = Path.of(args[1]);
        List<Path> files;
        try (Stream<Path> s = Files.list(schemas)) {
            files = s.filter(p -> p.toString().endsWith(".avsc")).sorted().toList();
        }
        SchemaStore.Cache store = new SchemaStore.Cache();
        for (Path f : files) {
            store.addSchema(new Schema.Parser().parse(f.toFile()));
        }
        boolean ok = true;
        for (Path f : files) {
            String name = f.getFileName().toString().replace(".avsc", "");
            Schema schema = new Schema.Parser().parse(f.toFile());
            long fp = SchemaNormalization.parsingFingerprint64(schema);
            Path hex = vectors.resolve(name + ".hex");
            if (!Files.exists(hex)) {
                continue;
            }
            byte[] data = HexFormat.of().parseHex(Files.readString(hex).strip());
            BinaryMessageDecoder<GenericRecord> decoder =
                new BinaryMessageDecoder<>(GenericData.get(), schema, store);
            GenericRecord record = decoder.decode(data);
            BinaryMessageEncoder<GenericRecord> encoder =
                new BinaryMessageEncoder<>(GenericData.get(), schema);
            ByteBuffer again = encoder.encode(record);
            byte[] bytes = new byte[again.remaining()];
            again.get(bytes);
            boolean same = java.util.Arrays.equals(bytes, data);
            ok &= same;
            System.out.println(name + "\t" + Long.toHexString(fp) + "\t"
                + (same ? "bytes-equal" : "BYTES-DIFFER") + "\t" + record);
        }
        System.exit(ok ? 0 : 1);
    }
}
