// Real-client check of mutual TLS with JAX-WS RI: the Service is created
// from the facade's ?wsdl over HTTPS (JAX-WS fetches and parses it), and
// TriageTicket is called through a Dispatch on its SOAP 1.1 port, whose
// address comes from that WSDL. The client certificate and the trusted
// server CA are the JVM's (-Djavax.net.ssl.keyStore / trustStore), as a
// legacy Java client configures them.
//
// Usage: java -cp JAXWS JaxwsTls.java WSDL_URL REQUEST_FILE:EXPECT...
// EXPECT is "ok" (a TriageTicketResponse) or a soapgate fault code. One
// line per case; exits 1 when any failed.

import java.io.File;
import java.io.StringWriter;
import java.net.URL;
import javax.xml.namespace.QName;
import javax.xml.transform.Source;
import javax.xml.transform.TransformerFactory;
import javax.xml.transform.stream.StreamResult;
import javax.xml.transform.stream.StreamSource;
import javax.xml.ws.BindingProvider;
import javax.xml.ws.Dispatch;
import javax.xml.ws.Service;
import javax.xml.ws.soap.SOAPFaultException;

public class JaxwsTls {
    public static void main(String[] args) throws Exception {
        String ns = "http://helpdesk.example.com/SupportDesk/";
        Service service = Service.create(new URL(args[0]), new QName(ns, "SupportDesk"));
        int failures = 0;
        for (int i = 1; i < args.length; i++) {
            String[] c = args[i].split(":");
            String file = c[0];
            String expect = c[1];
            Dispatch<Source> dispatch = service.createDispatch(
                    new QName(ns, "SupportDeskSoap"), Source.class, Service.Mode.MESSAGE);
            dispatch.getRequestContext().put(BindingProvider.SOAPACTION_USE_PROPERTY, true);
            dispatch.getRequestContext().put(BindingProvider.SOAPACTION_URI_PROPERTY, ns + "TriageTicket");
            String got;
            String detail;
            try {
                Source answer = dispatch.invoke(new StreamSource(new File(file)));
                StringWriter text = new StringWriter();
                TransformerFactory.newInstance().newTransformer().transform(answer, new StreamResult(text));
                detail = text.toString();
                got = detail.contains("TriageTicketResponse") ? "ok" : code(detail);
            } catch (SOAPFaultException f) {
                StringWriter text = new StringWriter();
                if (f.getFault().getDetail() != null) {
                    TransformerFactory.newInstance().newTransformer().transform(
                            new javax.xml.transform.dom.DOMSource(f.getFault().getDetail()), new StreamResult(text));
                }
                detail = f.getMessage() + " " + text;
                got = code(text.toString());
            }
            boolean ok = got.equals(expect);
            failures += ok ? 0 : 1;
            String shown = detail.length() > 200 ? detail.substring(0, 200) : detail;
            System.out.println((ok ? "ok   " : "FAIL ") + new File(file).getName() + ": expected " + expect + ", got " + got + " (" + shown + ")");
        }
        System.exit(failures == 0 ? 0 : 1);
    }

    /** The soapgate code in a fault's detail. */
    static String code(String xml) {
        int start = xml.indexOf(":Code>");
        if (start < 0) {
            return "no soapgate code";
        }
        start += ":Code>".length();
        int end = xml.indexOf('<', start);
        return end < 0 ? "no soapgate code" : xml.substring(start, end);
    }
}
