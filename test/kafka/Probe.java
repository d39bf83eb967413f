// Probe: exits 0 once the broker at args[0] answers a metadata request
// (DescribeCluster + ListTopics) through the real Kafka admin client.
// test/kafka.sh runs it with the java source launcher as its readiness check.
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;

public class Probe {
    public static void main(String[] args) {
        if (args.length != 1) {
            System.err.println("usage: Probe host:port");
            System.exit(2);
        }
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "5000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "8000");
        try (Admin admin = Admin.create(props)) {
            int nodes = admin.describeCluster().nodes().get(10, TimeUnit.SECONDS).size();
            admin.listTopics().names().get(10, TimeUnit.SECONDS);
            if (nodes < 1) {
                System.err.println("probe: broker reports no live nodes yet");
                System.exit(1);
            }
            System.out.println("probe: broker ready, " + nodes + " node(s)");
        } catch (Exception e) {
            System.err.println("probe: " + e);
            System.exit(1);
        }
    }
}
